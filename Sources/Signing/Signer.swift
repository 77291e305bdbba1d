// Signing: the NCP API Gateway v2 signature (HMAC-SHA256 via OpenSSL libcrypto), with no I/O.

internal import CCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The names of the three headers NCP's API Gateway reads to authenticate a call.
public enum SignatureHeader {
    /// Unix epoch milliseconds at which the request was signed.
    public static let timestamp = "x-ncp-apigw-timestamp"
    /// The NCP access key ID.
    public static let accessKey = "x-ncp-iam-access-key"
    /// Base64 of the HMAC-SHA256 over the string to sign.
    public static let signature = "x-ncp-apigw-signature-v2"
}

/// The three signed header values for one request.
public struct SignedHeaders: Sendable, Equatable {
    /// Value of `x-ncp-apigw-timestamp`.
    public var timestamp: String
    /// Value of `x-ncp-iam-access-key`.
    public var accessKey: String
    /// Value of `x-ncp-apigw-signature-v2`.
    public var signature: String
}

/// An NCP secret key. It never prints itself, so it cannot leak through logs or string interpolation.
public struct SecretKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let bytes: [UInt8]

    /// Creates a secret key from its text form (the value NCP shows in the console).
    public init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    /// Whether the key is empty (a configuration error).
    public var isEmpty: Bool { self.bytes.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Signs requests for NCP's API Gateway v2.
///
/// The string to sign is `"<METHOD> <path?query>\n<timestamp>\n<accessKey>"`, where `<path?query>` is exactly the
/// request-target that goes on the wire; the signature is base64(HMAC-SHA256(secretKey, stringToSign)).
public struct Signer: Sendable {
    /// The NCP access key ID (not secret; it is sent in clear in every request).
    public let accessKey: String
    private let secretKey: SecretKey

    /// Creates a signer for one key pair.
    /// - Parameters:
    ///   - accessKey: The NCP access key ID.
    ///   - secretKey: The NCP secret key.
    public init(accessKey: String, secretKey: SecretKey) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    /// Computes the v2 signature for one request.
    /// - Parameters:
    ///   - method: The HTTP method, upper case (`GET`, `POST`, …).
    ///   - target: The request-target as sent: path plus `?query` when present.
    ///   - timestamp: The epoch-milliseconds string sent in `x-ncp-apigw-timestamp`.
    /// - Returns: The base64 signature.
    public func signature(method: String, target: String, timestamp: String) -> String {
        var message: [UInt8] = []
        message.reserveCapacity(method.utf8.count + target.utf8.count + timestamp.utf8.count + self.accessKey.utf8.count + 3)
        message.append(contentsOf: method.utf8)
        message.append(UInt8(ascii: " "))
        message.append(contentsOf: target.utf8)
        message.append(UInt8(ascii: "\n"))
        message.append(contentsOf: timestamp.utf8)
        message.append(UInt8(ascii: "\n"))
        message.append(contentsOf: self.accessKey.utf8)
        return Self.hmacSHA256Base64(key: self.secretKey.bytes, message: message)
    }

    /// Signs one request at a given time.
    /// - Parameters:
    ///   - method: The HTTP method, upper case.
    ///   - target: The request-target as sent (path plus `?query`).
    ///   - epochMilliseconds: The signing time; defaults to now.
    /// - Returns: The three header values.
    public func sign(method: String, target: String, epochMilliseconds: Int64 = Signer.nowMilliseconds()) -> SignedHeaders {
        let timestamp = String(epochMilliseconds)
        return SignedHeaders(
            timestamp: timestamp,
            accessKey: self.accessKey,
            signature: self.signature(method: method, target: target, timestamp: timestamp)
        )
    }

    /// The current wall-clock time in Unix epoch milliseconds.
    public static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    static func hmacSHA256Base64(key: [UInt8], message: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                digest.withUnsafeMutableBufferPointer { out in
                    // An empty key still needs a non-null pointer for OpenSSL.
                    HMAC(EVP_sha256(), keyBytes.baseAddress ?? UnsafeRawPointer(out.baseAddress!), Int32(keyBytes.count),
                         messageBytes.baseAddress, messageBytes.count, out.baseAddress, &digestLength) != nil
                }
            }
        }
        precondition(ok && digestLength == 32, "HMAC-SHA256 failed in libcrypto")
        // 32 bytes encode to 44 base64 characters plus the NUL that EVP_EncodeBlock writes.
        var encoded = [UInt8](repeating: 0, count: 45)
        let written = encoded.withUnsafeMutableBufferPointer { out in
            digest.withUnsafeBufferPointer { input in
                EVP_EncodeBlock(out.baseAddress, input.baseAddress, 32)
            }
        }
        return String(decoding: encoded[0..<Int(written)], as: UTF8.self)
    }
}

/// Compares two byte strings in time that does not depend on where they differ.
///
/// Used to check signatures and caller tokens without leaking how many leading bytes matched.
/// - Returns: `true` when both have the same length and bytes.
public func constantTimeEquals(_ lhs: some StringProtocol, _ rhs: some StringProtocol) -> Bool {
    let a = Array(lhs.utf8)
    let b = Array(rhs.utf8)
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0
        }
    }
}
