import Signing

/// Checks the raw request-target before anything is routed or forwarded.
///
/// Only plain origin-form targets (`/path?query`) made of RFC 3986 characters pass. Anything that could make the
/// upstream see a different path than the one sensgate checked is refused: dot segments, encoded dots, slashes and
/// backslashes, `;` (path parameters) and `%25`, empty segments, NUL and control bytes, fragments, and over-long
/// targets.
public enum RequestTarget {
    /// Longest request-target accepted, in bytes.
    public static let maxLength = 4096

    /// The passthrough prefixes of PRODUCT.md §4.1.
    public static let passthroughPrefixes = ["/sms/v2/", "/brandmessage/v2/", "/alimtalk/v2/", "/friendtalk/v2/"]

    /// Why a target was refused.
    public enum Rejection: String, Sendable, Equatable {
        case notOriginForm = "request-target must be an absolute path (origin-form)"
        case tooLong = "request-target is too long"
        case invalidCharacter = "request-target contains a character that is not allowed"
        case badEscape = "request-target contains an invalid or forbidden percent-escape"
        case dotSegment = "request-target contains a dot segment"
        case emptySegment = "request-target contains an empty path segment"
        case host = "an HTTP/1.1 request needs exactly one Host header"
    }

    /// Validates a raw request-target.
    /// - Returns: `nil` when the target is acceptable, else why not.
    public static func validate(_ target: String) -> Rejection? {
        // Read in place (a native string's bytes are contiguous): stepping a `String.UTF8View` index byte by byte
        // cost more than the checks themselves.
        target.utf8.withContiguousStorageIfAvailable { Self.validate(bytes: $0) } ?? Array(target.utf8).withUnsafeBufferPointer { Self.validate(bytes: $0) }
    }

    private static func validate(bytes: UnsafeBufferPointer<UInt8>) -> Rejection? {
        guard bytes.first == UInt8(ascii: "/") else { return .notOriginForm }
        guard bytes.count <= Self.maxLength else { return .tooLong }
        var inQuery = false
        // The segment being read (the first '/' is consumed up front), as its length and its count of '.' bytes.
        var segmentLength = 0
        var segmentDots = 0
        var isDotSegment: Bool { segmentDots == segmentLength && (segmentDots == 1 || segmentDots == 2) }
        var index = 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "%"):
                guard index + 2 < bytes.count, let high = PercentEncoding.hexValue(bytes[index + 1]), let low = PercentEncoding.hexValue(bytes[index + 2])
                else {
                    return .badEscape
                }
                let decoded = high << 4 | low
                // Encoded NUL/controls anywhere; encoded '.', '/', '\' in the path, which some servers decode into a
                // different path than the one checked here.
                // `%25` (an encoded `%`) anywhere: decoded twice it becomes another escape than the one checked.
                if decoded < 0x20 || decoded == 0x7F || decoded == UInt8(ascii: "%") { return .badEscape }
                if !inQuery && (decoded == UInt8(ascii: ".") || decoded == UInt8(ascii: "/") || decoded == UInt8(ascii: "\\")) {
                    return .badEscape
                }
                segmentLength += 1
                index += 2
            case UInt8(ascii: "/") where !inQuery:
                if segmentLength == 0 { return .emptySegment }
                if isDotSegment { return .dotSegment }
                segmentLength = 0
                segmentDots = 0
            case UInt8(ascii: "?") where !inQuery:
                if isDotSegment { return .dotSegment }
                inQuery = true
            default:
                guard isAllowed(byte) else { return .invalidCharacter }
                if !inQuery {
                    segmentLength += 1
                    if byte == UInt8(ascii: ".") { segmentDots += 1 }
                }
            }
            index += 1
        }
        if !inQuery && isDotSegment { return .dotSegment }
        return nil
    }

    /// Whether a valid target lies under one of the passthrough prefixes.
    public static func isPassthrough(_ target: String) -> Bool {
        for prefix in Self.passthroughPrefixes where target.hasBytePrefix(prefix) {
            return true
        }
        return false
    }

    /// RFC 3986 unreserved, sub-delims but `;` (path parameters: `/a..;/b` reads as `/b` behind some servers), ':',
    /// '@', and '/' '?' inside the query.
    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: "="):
            true
        case UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"), UInt8(ascii: "?"):
            true
        default:
            false
        }
    }
}
