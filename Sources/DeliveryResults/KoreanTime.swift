/// SENS reports Korea Standard Time without an offset; sensgate emits RFC 3339 with `+09:00`.
public enum KoreanTime {
    /// A SENS `reserveTime` (`2026-12-01 10:30`, seconds optional) in Korea Standard Time, as Unix milliseconds.
    /// - Returns: `nil` when the text is not a date and time in that form.
    public static func epochMilliseconds(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16 || bytes.count == 19 else { return nil }
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15] + (bytes.count == 19 ? [17, 18] : [])
        guard digits.allSatisfy({ isDigit(bytes[$0]) }), bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"),
            bytes.count == 16 || bytes[16] == UInt8(ascii: ":")
        else { return nil }
        let year = Int64(number(bytes[0], bytes[1]) * 100 + number(bytes[2], bytes[3]))
        let month = Int64(number(bytes[5], bytes[6]))
        let day = Int64(number(bytes[8], bytes[9]))
        let hour = Int64(number(bytes[11], bytes[12]))
        let minute = Int64(number(bytes[14], bytes[15]))
        let second = bytes.count == 19 ? Int64(number(bytes[17], bytes[18])) : 0
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        // KST is UTC+9, without daylight saving.
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) - 9 * 3600) * 1000
    }

    /// Converts `2025-11-25 10:17:00` or `2025-11-28T11:21:06.317` to `2025-11-25T10:17:00+09:00` /
    /// `2025-11-28T11:21:06.317+09:00`, keeping the fraction exactly as given. A time that already carries `Z` or an
    /// offset is kept as it is.
    /// - Returns: `nil` when the text is not a date and time in one of those forms.
    public static func rfc3339(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        // yyyy-MM-dd?HH:mm:ss
        guard bytes.count >= 19 else { return nil }
        let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        guard digitPositions.allSatisfy({ isDigit(bytes[$0]) }),
            bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: " ") || bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
        let month = number(bytes[5], bytes[6])
        let day = number(bytes[8], bytes[9])
        let hour = number(bytes[11], bytes[12])
        let minute = number(bytes[14], bytes[15])
        let second = number(bytes[17], bytes[18])
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var index = 19
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
            guard index > start, index - start <= 9 else { return nil }
        }
        var output = bytes[0..<index]
        output[10] = UInt8(ascii: "T")
        let rest = bytes[index...]
        if rest.isEmpty {
            return String(decoding: output, as: UTF8.self) + "+09:00"
        }
        if rest.elementsEqual("Z".utf8) { return String(decoding: output, as: UTF8.self) + "Z" }
        // ±HH:MM
        let offset = Array(rest)
        if offset.count == 6, offset[0] == UInt8(ascii: "+") || offset[0] == UInt8(ascii: "-"), isDigit(offset[1]), isDigit(offset[2]),
            offset[3] == UInt8(ascii: ":"), isDigit(offset[4]), isDigit(offset[5])
        {
            return String(decoding: output, as: UTF8.self) + String(decoding: offset, as: UTF8.self)
        }
        return nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    private static func number(_ a: UInt8, _ b: UInt8) -> Int { Int(a - UInt8(ascii: "0")) * 10 + Int(b - UInt8(ascii: "0")) }
}
