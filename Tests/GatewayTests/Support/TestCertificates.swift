// Test-only TLS material for the upstream behind TLS (TLSUpstream.swift): a private CA and two server certificates
// it signed, valid until 2126. The keys protect nothing; they exist so tests can check sensgate's certificate
// verification. Made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 …` (see docs/security.md).

enum TestCertificates {
    /// The CA sensgate is told to trust (`upstream-ca-file`).
    static let authority = """
-----BEGIN CERTIFICATE-----
MIIBnDCCAUOgAwIBAgIUC/CrMwQd4SMKO6nHgNOTjk984powCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2Vuc2dhdGUgdGVzdCBDQTAgFw0yNjExMjMyMzEwMDJaGA8y
MTI2MTAzMDIzMTAwMlowGzEZMBcGA1UEAwwQc2Vuc2dhdGUgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABA28R/GtLqtLPyg7mwcbKZstiVcmU1Q/q3Hl
6tEvJGMIZ8g3qbledpZnPqbhYgEO6QELghAJ5aM24RYuC1nBDMGjYzBhMB0GA1Ud
DgQWBBTsw9VBjL9dz4YFgpxbP3PL8NquajAfBgNVHSMEGDAWgBTsw9VBjL9dz4YF
gpxbP3PL8NquajAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggq
hkjOPQQDAgNHADBEAiAExkg/zXMZ8Ll3haLdkBqyfrhXxvVJQJL+TLH0O2K93AIg
FasxxiAz/sS+qwkTJksP2BSsiveCvLWiEKUEd5Lecrs=
-----END CERTIFICATE-----
"""

    /// A server certificate for `localhost` and `127.0.0.1`, signed by ``authority``.
    static let localhost = """
-----BEGIN CERTIFICATE-----
MIIBvzCCAWagAwIBAgIUcnBRBYUvkrpTE+NPxV3OWAzwlVIwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2Vuc2dhdGUgdGVzdCBDQTAgFw0yNjExMjMyMzEwMDJaGA8y
MTI2MTAzMDIzMTAwMlowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEDaTXC8QEgocBbIn+GrVUd6kyeihN4sNOArd/U+3Wtm6e
oMzZ8IZ1TD/eK/ewL/Kkshc1P2cx+TNpQQcE54w03qOBjDCBiTAaBgNVHREEEzAR
gglsb2NhbGhvc3SHBH8AAAEwCQYDVR0TBAIwADATBgNVHSUEDDAKBggrBgEFBQcD
ATALBgNVHQ8EBAMCB4AwHQYDVR0OBBYEFIDqlglKYMhc/jHsp8bTTpHAYRfcMB8G
A1UdIwQYMBaAFOzD1UGMv13PhgWCnFs/c8vw2q5qMAoGCCqGSM49BAMCA0cAMEQC
H0sSUapsfPRiyGYh1kZpjGKDUj5iut4sXBjZoBKKBQUCIQDGABQOsK9eRNNtA7m8
fR/Ks4c8lLyFHR1m3u2yd5phQA==
-----END CERTIFICATE-----
"""
    static let localhostKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxLbVrHiL9znKXkJ1
Uz50B6XzIm5QWNBrw5276YWE3EOhRANCAAQNpNcLxASChwFsif4atVR3qTJ6KE3i
w04Ct39T7da2bp6gzNnwhnVMP94r97Av8qSyFzU/ZzH5M2lBBwTnjDTe
-----END PRIVATE KEY-----
"""

    /// A server certificate signed by ``authority`` for another name (`sens.example.invalid`): trusted issuer, wrong host.
    static let otherName = """
-----BEGIN CERTIFICATE-----
MIIBwDCCAWegAwIBAgIUcnBRBYUvkrpTE+NPxV3OWAzwlVMwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2Vuc2dhdGUgdGVzdCBDQTAgFw0yNjExMjMyMzEwMDJaGA8y
MTI2MTAzMDIzMTAwMlowEDEOMAwGA1UEAwwFb3RoZXIwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAASZbrv07fVOIeqfsD79lYqxPFy/T28Oupy3x9TeeOeRNTw6rCEy
EiMP7J5coIOrJ4re8HatBDMg6tD4o+9LgG+To4GRMIGOMB8GA1UdEQQYMBaCFHNl
bnMuZXhhbXBsZS5pbnZhbGlkMAkGA1UdEwQCMAAwEwYDVR0lBAwwCgYIKwYBBQUH
AwEwCwYDVR0PBAQDAgeAMB0GA1UdDgQWBBSXgbsuMc2dctIuTMq84sw/ZTWLyTAf
BgNVHSMEGDAWgBTsw9VBjL9dz4YFgpxbP3PL8NquajAKBggqhkjOPQQDAgNHADBE
AiArhFfbiZy4YNdk6qbVm6vd5snSofAYjsdEmhvMPgG+8gIgMyNben0ppapmEeaI
x6k1PSuV/wg8ZnfSyvwSpe5B5xA=
-----END CERTIFICATE-----
"""
    static let otherNameKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/oZdeb+/ZCBgDaNI
RCDr22Wqk844pUsAERC2slofdNKhRANCAASZbrv07fVOIeqfsD79lYqxPFy/T28O
upy3x9TeeOeRNTw6rCEyEiMP7J5coIOrJ4re8HatBDMg6tD4o+9LgG+T
-----END PRIVATE KEY-----
"""
}
