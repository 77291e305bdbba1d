internal import CCrypto

/// A Standard Webhooks signing secret (`whsec_` and the base64 of the key bytes), and the signature it gives an event
/// (PRODUCT.md §6): `v1,` then base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")).
///
/// Never shown: its descriptions are redacted like ``SecretKey``'s.
public struct WebhookSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let key: HMACKey

    /// Parses a secret's text (surrounding white space ignored).
    /// - Returns: `nil` unless it is `whsec_` followed by base64 of 16 to 64 bytes (Standard Webhooks asks for 24–64;
    ///   16 is allowed for secrets made by older tools).
    public init?(_ text: some StringProtocol) {
        let trimmed = text.utf8.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        let body = Array(trimmed.reversed().drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }.reversed())
        let prefix = Array("whsec_".utf8)
        guard body.starts(with: prefix), let key = Self.base64Decode(Array(body.dropFirst(prefix.count))), (16...64).contains(key.count) else {
            return nil
        }
        self.key = HMACKey(key)
    }

    /// The `webhook-signature` header value for one delivery.
    /// - Parameters:
    ///   - id: The event's `webhook-id`.
    ///   - timestamp: The `webhook-timestamp` sent with it (Unix seconds).
    ///   - body: The body exactly as sent.
    public func signature(id: String, timestamp: Int64, body: some Collection<UInt8>) -> String {
        var message: [UInt8] = []
        message.reserveCapacity(id.utf8.count + 24 + body.count)
        message.append(contentsOf: id.utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: String(timestamp).utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: body)
        return "v1," + self.key.base64MAC(message)
    }

    /// A new secret's text: `whsec_` and the base64 of 32 random bytes.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "whsec_" + HMACKey.base64(key)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: []) }

    /// Standard base64 with padding; `nil` for anything else.
    static func base64Decode(_ text: [UInt8]) -> [UInt8]? {
        guard !text.isEmpty, text.count % 4 == 0,
            text.allSatisfy({ $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "=") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        else { return nil }
        var out = [UInt8](repeating: 0, count: text.count / 4 * 3)
        let written = out.withUnsafeMutableBufferPointer { output in
            text.withUnsafeBufferPointer { input in EVP_DecodeBlock(output.baseAddress, input.baseAddress, Int32(input.count)) }
        }
        guard written >= 0 else { return nil }
        // EVP_DecodeBlock counts the padding's zero bytes too.
        let padding = text.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard padding <= 2 else { return nil }
        return Array(out.prefix(Int(written) - padding))
    }
}
