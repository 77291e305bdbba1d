/// Masks phone numbers in text that goes to logs.
///
/// Any run of digits (hyphens and a leading '+' allowed inside) with 9 or more digits is treated as a phone number:
/// its first three digits stay, the rest become `*`. Korean mobile numbers have 10–11 digits, 12–13 with `+82`.
public enum PhoneMasking {
    /// Returns `text` with every phone-number-like run masked.
    public static func mask(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var output: [UInt8]? = nil
        var index = 0
        while index < bytes.count {
            guard isDigit(bytes[index]) else {
                index += 1
                continue
            }
            // Extend over digits and single hyphens between digits.
            var end = index
            var digits = 0
            while end < bytes.count {
                if isDigit(bytes[end]) {
                    digits += 1
                    end += 1
                } else if bytes[end] == UInt8(ascii: "-"), end + 1 < bytes.count, isDigit(bytes[end + 1]) {
                    end += 1
                } else {
                    break
                }
            }
            if digits >= 9 {
                if output == nil { output = bytes }
                var kept = 0
                for position in index..<end where isDigit(bytes[position]) {
                    kept += 1
                    if kept > 3 { output?[position] = UInt8(ascii: "*") }
                }
            }
            index = end
        }
        guard let output else { return text }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
