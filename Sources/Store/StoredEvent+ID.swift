import Signing

extension StoredEvent {
    /// An event's id: derived from what it is about, so that writing it again (a retried transaction, another
    /// replica's poll) finds the same row, and the receiver sees one `webhook-id` per message. 128 bits of SHA-256.
    public static func id(requestId: String, messageId: String) -> String {
        let digest = SHA256.digest(Array(requestId.utf8) + [0] + Array(messageId.utf8))
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var text = "evt_"
        for byte in digest.prefix(16) {
            text.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
            text.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
        }
        return text
    }
}
