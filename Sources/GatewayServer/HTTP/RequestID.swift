import NIOHTTP1
import Synchronization

/// Every request's id: the caller's `X-Request-Id` when it is sane, else a new random one (returned on every answer).
enum RequestID {
    static let headerName = "X-Request-Id"

    /// Gives the request its id: the caller's when it is sane, else a new one.
    static func assign(from headers: HTTPHeaders, to record: RequestRecord) {
        if let given = headers.first(name: Self.headerName), Self.isAcceptable(given) {
            record.requestID = given
            record.requestIDFromCaller = true
        } else {
            record.requestID = Self.generate()
        }
    }

    /// Up to 128 visible ASCII characters with no quotes or backslashes: safe to echo and to log.
    static func isAcceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    /// A random 64-bit prefix drawn once per process, then a counter: 32 lower-case hex digits, unique per process
    /// and across restarts, with no system call per request (ids correlate log lines; they are not secrets).
    static func generate() -> String {
        let sequence = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        // Written straight into the string's storage: one allocation per id.
        return String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(Self.prefix, into: buffer, at: 0)
            Self.writeHex(sequence, into: buffer, at: 16)
            return 32
        }
    }

    private static let prefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()

    private static let counter = Atomic<UInt64>(0)

    /// 16 lower-case hex digits of `value`, leading zeros kept.
    private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        let digits: StaticString = "0123456789abcdef"
        for position in 0..<16 {
            let nibble = Int((value >> UInt64(60 - 4 * position)) & 0xF)
            buffer[offset + position] = digits.utf8Start[nibble]
        }
    }
}
