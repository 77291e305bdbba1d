import DeliveryResults
import JSON
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One log line as sensgate writes it: a JSON object with `time` (RFC 3339 UTC, milliseconds), `level`, `logger`
/// and `msg`, then the fields in the order given (callers give them sorted by key), and a newline.
///
/// ``JSONLogHandler`` writes every swift-log event through it; the access log writes its one line per request
/// through it directly, with typed fields, so the hot path builds no metadata dictionary, sorts nothing and casts
/// nothing at run time.
struct JSONLogLine {
    private var json: JSONWriter

    /// What follows `time` in every line of one kind — `level`, `logger`, `msg` — serialized once (the access log
    /// writes the same three on every request).
    struct Head: Sendable {
        fileprivate let members: [UInt8]

        init(level: Logger.Level, label: String, message: String) {
            var json = JSONWriter(capacity: 64)
            json.beginObject()
            JSONLogLine.writeHead(into: &json, level: level, label: label, message: message)
            json.endObject()
            // The members alone, without the braces.
            self.members = Array(json.bytes.dropFirst().dropLast())
        }
    }

    init(level: Logger.Level, label: String, message: String, capacity: Int = 384) {
        self.json = JSONWriter(capacity: capacity)
        self.beginLine()
        Self.writeHead(into: &self.json, level: level, label: label, message: message)
    }

    init(head: Head, capacity: Int = 384) {
        self.json = JSONWriter(capacity: capacity)
        self.beginLine()
        self.json.raw(head.members)
    }

    /// `{"time":"…"`: every line starts with its time.
    private mutating func beginLine() {
        self.json.beginObject()
        self.json.key(literal: "time")
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.timestampLength) { buffer in
            Self.timestamp(seconds: now.tv_sec, milliseconds: Int(now.tv_nsec / 1_000_000), into: buffer)
            self.json.string(utf8: UnsafeBufferPointer(buffer))
        }
    }

    /// `level`, `logger` and `msg`, in that order, as members of the object `json` is writing.
    private static func writeHead(into json: inout JSONWriter, level: Logger.Level, label: String, message: String) {
        json.key(literal: "level")
        json.string(level.rawValue)
        json.key(literal: "logger")
        json.string(label)
        json.key(literal: "msg")
        json.string(message)
    }

    /// A text field; nothing when `value` is `nil`.
    mutating func field(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        self.json.key(literal: key)
        self.json.string(value)
    }

    /// An integer field; nothing when `value` is `nil`.
    mutating func field(_ key: StaticString, int value: Int?) {
        guard let value else { return }
        self.json.key(literal: key)
        self.json.int(value)
    }

    mutating func field(_ key: StaticString, number value: Double) {
        self.json.key(literal: key)
        self.json.number(value)
    }

    /// A swift-log metadata value, as JSON of its own shape.
    mutating func field(_ key: String, metadata value: Logger.Metadata.Value) {
        self.json.key(key)
        Self.write(value, into: &self.json)
    }

    /// The finished line, newline included.
    consuming func finish() -> [UInt8] {
        self.json.endObject()
        self.json.endLine()
        return self.json.bytes
    }

    private static func write(_ value: Logger.Metadata.Value, into json: inout JSONWriter) {
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
            for element in values { write(element, into: &json) }
            json.endArray()
        case .dictionary(let dictionary):
            json.beginObject()
            for key in dictionary.keys.sorted() {
                guard let element = dictionary[key] else { continue }
                json.key(key)
                write(element, into: &json)
            }
            json.endObject()
        }
    }

    /// The length of ``timestamp(seconds:milliseconds:into:)``'s text.
    static let timestampLength = 24

    /// A time as RFC 3339 UTC with milliseconds (`2026-11-23T21:04:34.848Z`).
    static func timestamp(seconds: time_t, milliseconds: Int) -> String {
        String(unsafeUninitializedCapacity: Self.timestampLength) { buffer in
            Self.timestamp(seconds: seconds, milliseconds: milliseconds, into: buffer)
            return Self.timestampLength
        }
    }

    /// Writes a time as RFC 3339 UTC with milliseconds into the first ``timestampLength`` bytes of `buffer`, digit by
    /// digit: no formatter and no intermediate strings per line. The date is worked out from the day number (Howard
    /// Hinnant's `civil_from_days`): plain arithmetic, where `gmtime_r` took a long path through the C library for
    /// every log line.
    static func timestamp(seconds: time_t, milliseconds: Int, into buffer: UnsafeMutableBufferPointer<UInt8>) {
        let seconds = Int(seconds)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var end = 0
        func put(_ value: Int, width: Int, then separator: UInt8) {
            var value = value
            for position in stride(from: end + width - 1, through: end, by: -1) {
                buffer[position] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value % 10)
                value /= 10
            }
            buffer[end + width] = separator
            end += width + 1
        }
        put(year, width: 4, then: UInt8(ascii: "-"))
        put(month, width: 2, then: UInt8(ascii: "-"))
        put(day, width: 2, then: UInt8(ascii: "T"))
        put(secondOfDay / 3600, width: 2, then: UInt8(ascii: ":"))
        put(secondOfDay / 60 % 60, width: 2, then: UInt8(ascii: ":"))
        put(secondOfDay % 60, width: 2, then: UInt8(ascii: "."))
        put(milliseconds, width: 3, then: UInt8(ascii: "Z"))
    }
}
