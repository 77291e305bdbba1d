extension String {
    /// Whether the text equals `lowercase` ignoring ASCII case — for header names and tokens, without making a
    /// lower-case copy (the curl loop's header list, the HTTP exchange guard).
    package func equalsIgnoringASCIICase(_ lowercase: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        guard self.utf8.count == expected.count else { return false }
        return zip(self.utf8, expected).allSatisfy { actual, wanted in
            (actual >= UInt8(ascii: "A") && actual <= UInt8(ascii: "Z") ? actual | 0x20 : actual) == wanted
        }
    }
}
