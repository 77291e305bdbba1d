#if canImport(Glibc)
import Glibc
#endif

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line breaks (no Foundation needed).
    var trimmingASCIIWhitespace: SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = self.firstIndex(where: { !isSpace($0) }), let last = self.lastIndex(where: { !isSpace($0) }) else {
            return self[self.endIndex...]
        }
        return self[first...last]
    }
}

extension StringProtocol {
    /// Whether the text begins with `prefix`, byte for byte, compared in place: a generic `utf8.starts(with:)` steps
    /// two string iterators byte by byte, and routing asks this a dozen times per request.
    func hasBytePrefix(_ prefix: String) -> Bool {
        let compared = self.utf8.withContiguousStorageIfAvailable { bytes in
            prefix.utf8.withContiguousStorageIfAvailable { start in
                guard start.count <= bytes.count else { return false }
                guard let text = bytes.baseAddress, let head = start.baseAddress else { return true }  // an empty prefix
                return memcmp(text, head, start.count) == 0
            }
        }
        return (compared ?? nil) ?? self.utf8.starts(with: prefix.utf8)
    }
}
