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
public struct SecretKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let bytes: [UInt8]

    /// Creates a secret key from its text form (the value NCP shows in the console).
    public init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    /// Whether the key is empty (a configuration error).
    public var isEmpty: Bool { self.bytes.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    /// No children: `dump` and debuggers' reflection show nothing of the key either.
    public var customMirror: Mirror { Mirror(self, children: []) }
}

/// Signs requests for NCP's API Gateway v2.
///
/// The string to sign is `"<METHOD> <path?query>\n<timestamp>\n<accessKey>"`, where `<path?query>` is exactly the
/// request-target that goes on the wire; the signature is base64(HMAC-SHA256(secretKey, stringToSign)).
public struct Signer: Sendable {
    /// The NCP access key ID (not secret; it is sent in clear in every request).
    public let accessKey: String
    private let key: HMACKey

    /// Creates a signer for one key pair.
    /// - Parameters:
    ///   - accessKey: The NCP access key ID.
    ///   - secretKey: The NCP secret key.
    public init(accessKey: String, secretKey: SecretKey) {
        self.accessKey = accessKey
        self.key = HMACKey(secretKey.bytes)
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
        return self.key.base64MAC(message)
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

}

/// Process-wide libcrypto settings.
public enum Libcrypto {
    /// Tells libcrypto not to load its human-readable error strings (~0.6 MB of resident memory). sensgate never
    /// prints them: an upstream TLS failure is reported with libcurl's own text (`curl_easy_strerror`). It must run
    /// before anything else initializes OpenSSL — libcurl's global init does — and later calls change nothing.
    /// - Returns: Whether libcrypto accepted the setting.
    @discardableResult
    public static func skipErrorStrings() -> Bool {
        OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS), nil) == 1
    }
}

/// HMAC-SHA256 with the key's two padded blocks hashed once, up front.
///
/// OpenSSL 3's one-shot `HMAC()` looks the MAC and the digest up by name on every call, which cost more than the
/// hashing itself; here a signature is two context copies and two small hashes.
///
/// Invariant (hence `@unchecked Sendable`): `inner` and `outer` are written only in `init` and only ever copied from
/// afterwards, which OpenSSL allows from any number of threads at once.
final class HMACKey: @unchecked Sendable {
    private let inner: OpaquePointer
    private let outer: OpaquePointer

    init(_ key: [UInt8]) {
        let blockSize = 64
        // RFC 2104: a key longer than a block is hashed first; then it is zero-padded to a block.
        var block = key.count > blockSize ? Self.sha256(key) : key
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        guard let inner = EVP_MD_CTX_new(), let outer = EVP_MD_CTX_new() else {
            preconditionFailure("libcrypto could not allocate a digest context")
        }
        let ok = Self.absorb(inner, block.map { $0 ^ 0x36 }) && Self.absorb(outer, block.map { $0 ^ 0x5C })
        precondition(ok, "SHA-256 failed in libcrypto")
        self.inner = inner
        self.outer = outer
    }

    deinit {
        EVP_MD_CTX_free(self.inner)
        EVP_MD_CTX_free(self.outer)
    }

    /// base64(HMAC-SHA256(key, message)).
    func base64MAC(_ message: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = digest.withUnsafeMutableBufferPointer { out -> Bool in
            guard let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            var length: UInt32 = 0
            // H((K ^ ipad) || message), then H((K ^ opad) || that).
            return EVP_MD_CTX_copy_ex(context, self.inner) == 1
                && message.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) } == 1
                && EVP_DigestFinal_ex(context, out.baseAddress, &length) == 1
                && EVP_MD_CTX_copy_ex(context, self.outer) == 1
                && EVP_DigestUpdate(context, out.baseAddress, 32) == 1
                && EVP_DigestFinal_ex(context, out.baseAddress, &length) == 1 && length == 32
        }
        precondition(ok, "HMAC-SHA256 failed in libcrypto")
        return Self.base64(digest)
    }

    /// Standard base64 with padding, through libcrypto.
    static func base64(_ bytes: [UInt8]) -> String {
        // Every 3 bytes encode to 4 characters, plus the NUL that EVP_EncodeBlock writes.
        var encoded = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4 + 1)
        let written = encoded.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { input in EVP_EncodeBlock(out.baseAddress, input.baseAddress, Int32(input.count)) }
        }
        return String(decoding: encoded[0..<Int(written)], as: UTF8.self)
    }

    private static func absorb(_ context: OpaquePointer, _ block: [UInt8]) -> Bool {
        EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1
            && block.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) } == 1
    }

    private static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        SHA256.digest(bytes)
    }
}

/// SHA-256 through libcrypto.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { EVP_Digest(input.baseAddress, input.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        precondition(ok == 1 && length == 32, "SHA-256 failed in libcrypto")
        return digest
    }

    /// The 32-byte digest of what `feed` hands the hasher, in order: several byte runs hashed as one, without
    /// joining them first (a request body is not copied to be fingerprinted).
    public static func digest(_ feed: (inout Hasher) -> Void) -> [UInt8] {
        var hasher = Hasher()
        feed(&hasher)
        return hasher.finish()
    }

    /// A SHA-256 computation in progress (one libcrypto digest context).
    public struct Hasher: ~Copyable {
        private let context: OpaquePointer

        init() {
            guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
                preconditionFailure("SHA-256 could not start in libcrypto")
            }
            self.context = context
        }

        /// Adds bytes to the digest.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            precondition(EVP_DigestUpdate(self.context, base, bytes.count) == 1, "SHA-256 failed in libcrypto")
        }

        /// Adds the bytes of a text.
        public mutating func update(_ text: String) {
            var text = text
            text.withUTF8 { self.update(UnsafeRawBufferPointer($0)) }
        }

        consuming func finish() -> [UInt8] {
            var digest = [UInt8](repeating: 0, count: 32)
            var length: UInt32 = 0
            let ok = digest.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(self.context, $0.baseAddress, &length) }
            precondition(ok == 1 && length == 32, "SHA-256 failed in libcrypto")
            return digest
        }

        deinit { EVP_MD_CTX_free(self.context) }
    }
}

/// Compares two byte strings in time that does not depend on where they differ.
///
/// Used to check signatures and caller tokens without leaking how many leading bytes matched.
/// - Returns: `true` when both have the same length and bytes.
public func constantTimeEquals(_ lhs: some StringProtocol, _ rhs: some StringProtocol) -> Bool {
    constantTimeEquals(bytes: Array(lhs.utf8), Array(rhs.utf8))
}

/// Compares two byte arrays in time that does not depend on where they differ (digests, say).
/// - Returns: `true` when both have the same length and bytes.
public func constantTimeEquals(bytes a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0
        }
    }
}
