import NIOHTTP1
import Signing

/// One request as the routes see it: its head, where it goes, and the record its access-log line is made from.
///
/// A class: a route's closures capture it, and as a struct each capture retained its head, headers, record and both
/// substrings one by one.
final class Exchange: Sendable {
    let head: HTTPRequestHead
    let record: RequestRecord
    /// The request-target as received (origin-form, validated by ``RequestTarget/validate(_:)`` before routing).
    var target: String { self.head.uri }
    var method: String { self.head.method.rawValue }
    /// The target's path, without the query.
    let path: Substring
    /// The target's query, without the `?`; empty when there is none.
    let query: Substring

    init(head: HTTPRequestHead, record: RequestRecord) {
        self.head = head
        self.record = record
        let target = head.uri
        if let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            self.path = target[..<mark]
            self.query = target[target.utf8.index(after: mark)...]
        } else {
            self.path = target[...]
            self.query = ""
        }
    }

    /// The first value of a request header.
    func header(_ name: String) -> String? { self.head.headers.first(name: name) }

    /// Every value of a query parameter, percent-decoded, in order.
    func queryValues(_ name: String) -> [String] {
        var values: [String] = []
        for pair in self.query.utf8.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = parts.first, Self.percentDecoded(key).elementsEqual(name.utf8) else { continue }
            values.append(String(decoding: parts.count > 1 ? Self.percentDecoded(parts[1]) : [], as: UTF8.self))
        }
        return values
    }

    /// The first value of a query parameter, percent-decoded.
    func queryValue(_ name: String) -> String? { self.queryValues(name).first }

    /// `%XX` decoded (the target was validated, so every `%` is followed by two hex digits).
    static func percentDecoded(_ bytes: Substring.UTF8View.SubSequence) -> [UInt8] {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index != bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), bytes.distance(from: index, to: bytes.endIndex) >= 3,
                let high = PercentEncoding.hexValue(bytes[bytes.index(index, offsetBy: 1)]), let low = PercentEncoding.hexValue(bytes[bytes.index(index, offsetBy: 2)])
            {
                decoded.append(high << 4 | low)
                index = bytes.index(index, offsetBy: 3)
            } else {
                decoded.append(byte)
                index = bytes.index(after: index)
            }
        }
        return decoded
    }
}

extension Exchange {
    /// The longest `?wait=`.
    static let longestWait = 60

    /// `?wait=SECONDS` (PRODUCT.md §6): 0 to 60 whole seconds, digits only; none is no wait.
    func wait() throws(GatewayError) -> Duration {
        guard let text = self.queryValue("wait") else { return .zero }
        guard !text.isEmpty, text.utf8.count <= 2, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let seconds = Int(text), seconds <= Self.longestWait
        else {
            throw GatewayError(.invalidRequest, "wait must be whole seconds from 0 to \(Self.longestWait)")
        }
        return .seconds(seconds)
    }
}
