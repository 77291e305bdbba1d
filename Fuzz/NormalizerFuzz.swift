// libFuzzer harness: SENS bodies of any shape through the JSON parser and every normalizer.
//
// Properties checked on every input (a violation traps, which libFuzzer reports as a crash):
// - nothing crashes, hangs or recurses without bound (the parser caps nesting);
// - a body either normalizes completely or is refused with a NormalizationError — never half-filled;
// - every result serializes to JSON that sensgate's own parser reads back, with the class consistent.

import JSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNormalizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let normalizer = Normalizer()
    for channel in DeliveryChannel.allCases {
        guard let results = try? normalizer.normalize(channel: channel, serviceId: "ncp:sms:kr:1:fuzz", body: bytes) else { continue }
        for result in results {
            var writer = JSONWriter()
            result.write(into: &writer, raw: nil)
            guard let parsed = try? JSONValue.parse(writer.bytes) else { fatalError("unified JSON does not parse back") }
            guard case .string(let resultClass)? = parsed["class"], resultClass == result.resultClass.rawValue else {
                fatalError("class missing or inconsistent")
            }
            guard case .bool(let retryable)? = parsed["retryable"], retryable == (result.resultClass == .transient) else {
                fatalError("retryable inconsistent with class")
            }
            guard !result.attempts.isEmpty else { fatalError("a result without attempts") }
        }
    }
    return 0
}
