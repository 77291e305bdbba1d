import DeliveryResults
public import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log handler that writes one JSON object per line to standard output (or any byte sink).
///
/// Keys: `time` (RFC 3339 UTC, milliseconds), `level`, `logger`, `msg`, then the metadata. Each line goes out in
/// one `write(2)`, so lines from different threads never interleave and no lock is needed.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: @Sendable ([UInt8]) -> Void

    /// Creates a handler that writes to standard output.
    public init(label: String) {
        self.init(label: label) { line in
            line.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(1, base + offset, bytes.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    /// Creates a handler that hands each finished line (with its newline) to `sink`.
    public init(label: String, sink: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var json = JSONWriter(capacity: 384)
        json.beginObject()
        json.key("time")
        json.string(Self.timestamp())
        json.key("level")
        json.string(event.level.rawValue)
        json.key("logger")
        json.string(self.label)
        json.key("msg")
        json.string(event.message.description)
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            json.key(key)
            Self.writeValue(value, into: &json)
        }
        json.endObject()
        json.endLine()
        self.sink(json.bytes)
    }

    private static func writeValue(_ value: Logger.Metadata.Value, into json: inout JSONWriter) {
        switch value {
        case .string(let text):
            json.string(text)
        case .stringConvertible(let convertible):
            if let int = convertible as? Int {
                json.int(int)
            } else if let double = convertible as? Double {
                json.number(double)
            } else if let bool = convertible as? Bool {
                json.bool(bool)
            } else {
                json.string(convertible.description)
            }
        case .array(let values):
            json.beginArray()
            for element in values { writeValue(element, into: &json) }
            json.endArray()
        case .dictionary(let dictionary):
            json.beginObject()
            for key in dictionary.keys.sorted() {
                guard let element = dictionary[key] else { continue }
                json.key(key)
                writeValue(element, into: &json)
            }
            json.endObject()
        }
    }

    /// RFC 3339 UTC with milliseconds (`2026-11-23T21:04:34.848Z`), written digit by digit into one string: no
    /// formatter and no intermediate strings per line.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var end = 0
            func put(_ value: Int, width: Int, then separator: Character) {
                var value = value
                for position in stride(from: end + width - 1, through: end, by: -1) {
                    buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                buffer[end + width] = separator.asciiValue ?? UInt8(ascii: "?")
                end += width + 1
            }
            put(Int(parts.tm_year) + 1900, width: 4, then: "-")
            put(Int(parts.tm_mon) + 1, width: 2, then: "-")
            put(Int(parts.tm_mday), width: 2, then: "T")
            put(Int(parts.tm_hour), width: 2, then: ":")
            put(Int(parts.tm_min), width: 2, then: ":")
            put(Int(parts.tm_sec), width: 2, then: ".")
            put(Int(now.tv_nsec / 1_000_000), width: 3, then: "Z")
            return end
        }
    }
}
