// libFuzzer harness: the request-target validator, the gate in front of the upstream.
//
// A target it accepts must be one the upstream cannot read as a different path: it starts with '/', has no dot
// segment, no encoded '.', '/', '\' or control byte in the path, no raw control byte, space or backslash anywhere,
// no empty segment inside the path, and fits the length limit.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let target = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard RequestTarget.validate(target) == nil else { return 0 }
    let bytes = Array(target.utf8)
    guard bytes.first == UInt8(ascii: "/"), bytes.count <= RequestTarget.maxLength else { fatalError("accepted a non-origin-form target") }
    guard !bytes.contains(where: { $0 < 0x21 || $0 >= 0x7F || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "#") }) else {
        fatalError("accepted a control, space, backslash, fragment or non-ASCII byte")
    }
    let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
    let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    for (index, segment) in segments.enumerated() {
        if segment == "." || segment == ".." { fatalError("accepted a dot segment") }
        // A trailing slash is an ordinary URL; an empty segment inside the path (`//`) is not.
        if segment.isEmpty && index < segments.count - 1 { fatalError("accepted an empty segment") }
    }
    let lowered = path.lowercased()
    for escape in ["%2e", "%2f", "%5c", "%00"] where lowered.contains(escape) {
        fatalError("accepted an encoded path separator or dot: \(escape)")
    }
    return 0
}
