import Hummingbird
import HTTPTypes

/// Gives every request an id: the caller's `X-Request-Id` when it is sane, else a new random one, and returns it
/// on every response.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    static let headerName = HTTPField.Name("X-Request-Id")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id: String
        if let given = request.headers[Self.headerName], Self.isAcceptable(given) {
            id = given
            context.record.requestIDFromCaller = true
        } else {
            id = Self.generate()
        }
        context.record.requestID = id
        var response = try await next(request, context)
        response.headers[Self.headerName] = id
        return response
    }

    /// Up to 128 visible ASCII characters with no quotes or backslashes: safe to echo and to log.
    static func isAcceptable(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    /// 128 random bits as 32 lower-case hex digits.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let hex = String(high, radix: 16)
        let hexLow = String(low, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + String(repeating: "0", count: 16 - hexLow.count) + hexLow
    }
}
