import Hummingbird
import HTTPTypes
import Synchronization

/// Gives every request an id: the caller's `X-Request-Id` when it is sane, else a new random one, and returns it
/// on every response.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    static let headerName = HTTPField.Name("X-Request-Id")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        Self.assign(from: request.headers, to: context.record)
        var response = try await next(request, context)
        response.headers[Self.headerName] = context.record.requestID
        return response
    }

    /// Gives the request its id: the caller's when it is sane, else a new one.
    static func assign(from headers: HTTPFields, to record: RequestRecord) {
        if let given = headers[Self.headerName], Self.isAcceptable(given) {
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
        return Self.prefix + Self.hex(sequence)
    }

    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return Self.hex(generator.next())
    }()

    private static let counter = Atomic<UInt64>(0)

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
