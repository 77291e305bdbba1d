/// Masks phone numbers in text that goes to logs.
///
/// A phone number is a run of 9 or more digits, with the separators people write between digit groups: `-`, `.`,
/// `_`, a space, parentheses around a group (`(010)1234-5678`), a leading `+` (`+82 10 …`), and each of these — and
/// the digits themselves (`%30`…`%39`) — percent-encoded, as they appear in request-targets (`010%201234%205678`). Its first three
/// digits stay, every later digit becomes `*`. Korean mobile numbers have 10–11 digits, 12–13 with `+82`.
/// Over-masking (a long version number, say) is the safe side.
public enum PhoneMasking {
    /// Returns `text` with every phone-number-like run masked.
    public static func mask(_ text: String) -> String {
        // Read in place (no copy for the usual native string); a copy is made only when there is something to mask.
        let masked = text.utf8.withContiguousStorageIfAvailable { Self.masked($0) } ?? Array(text.utf8).withUnsafeBufferPointer { Self.masked($0) }
        return masked ?? text
    }

    /// The masked text, or `nil` when nothing looks like a phone number.
    private static func masked(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var output: [UInt8]? = nil
        var index = 0
        while index < bytes.count {
            guard digitLength(bytes, at: index) != nil else {
                index += 1
                continue
            }
            // Extend over digits, and over one separator at a time where a digit follows it.
            var end = index
            var digits = 0
            while end < bytes.count {
                if let length = digitLength(bytes, at: end) {
                    digits += 1
                    end += length
                } else if let length = separatorLength(bytes, at: end), end + length < bytes.count, startsGroup(bytes, at: end + length) {
                    end += length
                } else {
                    break
                }
            }
            if digits >= 9 {
                if output == nil { output = Array(bytes) }
                var kept = 0
                var position = index
                while position < end {
                    guard let length = digitLength(bytes, at: position) else {
                        position += separatorLength(bytes, at: position) ?? 1
                        continue
                    }
                    kept += 1
                    // A digit, or all of a percent-encoded one (`%35`), becomes `*`.
                    if kept > 3 { for offset in 0..<length { output?[position + offset] = UInt8(ascii: "*") } }
                    position += length
                }
            }
            index = end
        }
        return output.map { String(decoding: $0, as: UTF8.self) }
    }

    /// 1 for a digit, 3 for a percent-encoded one (`%30`…`%39`), else `nil`.
    private static func digitLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
        if isDigit(bytes[index]) { return 1 }
        if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count, bytes[index + 1] == UInt8(ascii: "3"), isDigit(bytes[index + 2]) {
            return 3
        }
        return nil
    }

    /// The length of a separator at `index` (1, or 3 for a percent-encoded one), or `nil`.
    private static func separatorLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
        switch bytes[index] {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: " "), UInt8(ascii: "_"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "+"):
            return 1
        case UInt8(ascii: "%") where index + 2 < bytes.count:
            // %20 space, %2D -, %2E ., %28 (, %29 ), %2B +
            guard bytes[index + 1] == UInt8(ascii: "2") else { return nil }
            switch bytes[index + 2] | 0x20 {
            case UInt8(ascii: "0"), UInt8(ascii: "d"), UInt8(ascii: "e"), UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "b"): return 3
            default: return nil
            }
        default:
            return nil
        }
    }

    /// Whether a digit group starts at `index`: a digit, or one more separator then a digit (`) `, `-(`).
    private static func startsGroup(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        if digitLength(bytes, at: index) != nil { return true }
        guard let length = separatorLength(bytes, at: index), index + length < bytes.count else { return false }
        return digitLength(bytes, at: index + length) != nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
