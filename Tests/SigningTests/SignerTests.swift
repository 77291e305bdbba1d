@testable import Signing
import Testing

/// Vectors computed once, independently, with Python's `hmac` and `base64` modules:
/// `base64.b64encode(hmac.new(secret, f"{method} {target}\n{ts}\n{ak}".encode(), hashlib.sha256).digest())`.
struct SignatureVector: Sendable, CustomTestStringConvertible {
    let secret: String
    let accessKey: String
    let method: String
    let target: String
    let timestamp: String
    let expected: String
    var testDescription: String { "\(method) \(target)" }
}

@Suite("NCP API Gateway v2 signature")
struct SignerTests {
    static let vectors: [SignatureVector] = [
        .init(
            secret: "secretKeyValue", accessKey: "AKIDEXAMPLE", method: "GET",
            target: "/sms/v2/services/ncp:sms:kr:50*********1:sens/messages/f574d3f0-****-****-****-daa31f50eaf5",
            timestamp: "1700000000000", expected: "t1cSJBuheVEKahzPkFDAJPZeVj2T0BXvoEUiBS1FwBI="
        ),
        .init(
            secret: "secretKeyValue", accessKey: "AKIDEXAMPLE", method: "POST",
            target: "/sms/v2/services/ncp:sms:kr:123:sens/messages",
            timestamp: "1732500000123", expected: "pnzk/2yAjyi9BGjmtNVUJJILq3f+qIl4TPfUOX7zLyE="
        ),
        // A query string and percent-escapes: signed exactly as sent, never decoded.
        .init(
            secret: "s3cr3t/+=", accessKey: "ak-2", method: "GET",
            target: "/sms/v2/services/ncp%3Asms%3Akr%3A1%3Asens/messages?requestId=RSMA-1&pageSize=10",
            timestamp: "1", expected: "UWOiLPIbGZcE9ygfw5qSqRQ0OXrU4fLFGb+djnjeopw="
        ),
        // A non-ASCII secret (UTF-8 bytes), an escaped space and an empty query value.
        .init(
            secret: "한글키", accessKey: "AK", method: "DELETE",
            target: "/alimtalk/v2/services/x/messages/a%20b?x=%EA%B0%80&y=",
            timestamp: "1732845666317", expected: "Jj/h4zeJXr32FofUfboedcdVHCkbTg68pwiKGe+JAdg="
        ),
        .init(secret: "", accessKey: "AK", method: "GET", target: "/", timestamp: "0", expected: "aUQ9qgs8D8g6ialRtsSYGLlevB/+iu32ejlBft51ItE="),
    ]

    @Test("matches independently computed vectors", arguments: vectors)
    func matchesVector(_ vector: SignatureVector) {
        let signer = Signer(accessKey: vector.accessKey, secretKey: SecretKey(vector.secret))
        #expect(signer.signature(method: vector.method, target: vector.target, timestamp: vector.timestamp) == vector.expected)
    }

    @Test("sign() fills all three headers from the given time")
    func signHeaders() {
        let signer = Signer(accessKey: "AKIDEXAMPLE", secretKey: SecretKey("secretKeyValue"))
        let headers = signer.sign(method: "POST", target: "/sms/v2/services/ncp:sms:kr:123:sens/messages", epochMilliseconds: 1_732_500_000_123)
        #expect(headers.timestamp == "1732500000123")
        #expect(headers.accessKey == "AKIDEXAMPLE")
        #expect(headers.signature == "pnzk/2yAjyi9BGjmtNVUJJILq3f+qIl4TPfUOX7zLyE=")
    }

    @Test("every part of the string to sign changes the signature")
    func sensitivity() {
        let signer = Signer(accessKey: "AK", secretKey: SecretKey("k"))
        let base = signer.signature(method: "GET", target: "/a?b=1", timestamp: "1")
        #expect(signer.signature(method: "POST", target: "/a?b=1", timestamp: "1") != base)
        #expect(signer.signature(method: "GET", target: "/a?b=2", timestamp: "1") != base)
        #expect(signer.signature(method: "GET", target: "/a", timestamp: "1") != base)
        #expect(signer.signature(method: "GET", target: "/a?b=1", timestamp: "2") != base)
        #expect(Signer(accessKey: "AK2", secretKey: SecretKey("k")).signature(method: "GET", target: "/a?b=1", timestamp: "1") != base)
        #expect(Signer(accessKey: "AK", secretKey: SecretKey("k2")).signature(method: "GET", target: "/a?b=1", timestamp: "1") != base)
    }

    @Test("the current time is epoch milliseconds")
    func clock() {
        let now = Signer.nowMilliseconds()
        // 2024-01-01 .. 2100-01-01 in milliseconds: a seconds or microseconds value would fall outside.
        #expect(now > 1_704_067_200_000 && now < 4_102_444_800_000)
    }

    @Test("a secret key never prints itself")
    func secretRedacted() {
        let key = SecretKey("very-secret-value")
        #expect("\(key)" == "<redacted>")
        #expect(String(reflecting: key) == "<redacted>")
        let signer = Signer(accessKey: "AK", secretKey: key)
        #expect(!String(describing: signer).contains("very-secret-value"))
    }

    @Test("constant-time comparison")
    func constantTime() {
        #expect(constantTimeEquals("abc", "abc"))
        #expect(!constantTimeEquals("abc", "abd"))
        #expect(!constantTimeEquals("abc", "abcd"))
        #expect(constantTimeEquals("", ""))
    }
}

/// HMAC-SHA256 itself, at the key lengths where RFC 2104 changes path: RFC 4231 test cases 1, 2 and 6 (131-byte key,
/// hashed first), plus an empty key and keys of exactly one block and one byte over (expected values from Python's
/// `hmac` module).
@Suite("HMAC-SHA256")
struct HMACTests {
    @Test(
        "matches the reference values",
        arguments: [
            ([UInt8](repeating: 0x0B, count: 20), "Hi There", "sDRMYdjbOFNcqK/OrwvxK4gdwgDJgz2nJuk3bC4yz/c="),
            (Array("Jefe".utf8), "what do ya want for nothing?", "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="),
            ([UInt8](repeating: 0xAA, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First", "YOQxWR7gtn8Niiaqy/W3f44LxiE3KMUUBUYEDw7jf1Q="),
            ([], "", "thNnmggU2ex3L5XXeMNfxf8Wl8STcVZTxscSFEKSxa0="),
            ([UInt8](repeating: UInt8(ascii: "k"), count: 64), "x", "+RxMQDYl+waRDvk5mSZbvS1iuursb/NkVUmMwST+PmY="),
            ([UInt8](repeating: UInt8(ascii: "k"), count: 65), "x", "dQkso+4rMHRwwidpe0Kz5lN2qjuumPtaH3t1NtqpWIo="),
        ])
    func reference(key: [UInt8], message: String, expected: String) {
        let hmac = HMACKey(key)
        #expect(hmac.base64MAC(Array(message.utf8)) == expected)
        // The key's precomputed state is only read: a second use gives the same answer.
        #expect(hmac.base64MAC(Array(message.utf8)) == expected)
    }

    @Test("one key used from many threads at once gives the same signature every time")
    func concurrent() async {
        let signer = Signer(accessKey: "AK", secretKey: SecretKey("concurrent-secret"))
        let expected = signer.signature(method: "GET", target: "/sms/v2/x", timestamp: "1")
        let all = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<2000).allSatisfy { _ in signer.signature(method: "GET", target: "/sms/v2/x", timestamp: "1") == expected } }
            }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(all)
    }
}

@Suite("Webhook signatures (Standard Webhooks)")
struct WebhookSecretTests {
    @Test("the Standard Webhooks test vector")
    func vector() throws {
        let secret = try #require(WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = secret.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect("\(secret)" == "<redacted>")
    }

    @Test("only whsec_ and base64 of 16 to 64 bytes is a secret", arguments: [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!", "whsec_AAAA", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
    ])
    func refused(_ text: String) {
        #expect(WebhookSecret(text) == nil)
    }

    @Test("surrounding white space (a file's newline) is ignored")
    func trimmed() {
        #expect(WebhookSecret("  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n") != nil)
    }
}

@Suite("Webhook secrets made by sensgate")
struct WebhookSecretGenerationTests {
    @Test("a generated secret parses, and two are never the same")
    func generated() {
        let one = WebhookSecret.generate()
        #expect(one.hasPrefix("whsec_"))
        #expect(WebhookSecret(one) != nil)
        #expect(one != WebhookSecret.generate())
    }
}
