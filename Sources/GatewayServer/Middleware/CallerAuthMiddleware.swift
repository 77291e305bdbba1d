import HTTPTypes
import Hummingbird

/// With caller tokens configured, lets in only requests that carry a valid one (`Authorization: Bearer …` or
/// `X-Sensgate-Token`), and notes the caller. What the caller may then do is decided per operation by the caller
/// policy (``Caller/permits(_:)``), where each route knows its operations. Health, readiness and metrics stay open
/// for probes and scrapers.
struct CallerAuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    static let tokenHeader = HTTPField.Name("X-Sensgate-Token")!
    static let open: Set<String> = ["/healthz", "/readyz", "/metrics"]

    let store: CallerStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        context.record.caller = try Self.authorize(request.head, store: self.store)
        return try await next(request, context)
    }

    /// The caller a request comes from, when caller tokens are configured.
    /// - Returns: The caller, or `nil` when no tokens are configured or the route is open.
    /// - Throws: ``GatewayError`` `unauthorized` for a missing or unknown token.
    static func authorize(_ head: HTTPRequest, store: CallerStore) throws(GatewayError) -> Caller? {
        // Without tokens there is nothing to check (and nothing to work out per request).
        guard let tokens = store.tokens else { return nil }
        let target = head.path ?? ""
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !Self.open.contains(path) else { return nil }
        guard let presented = Self.token(in: head.headerFields), let caller = tokens.authenticate(presented) else {
            throw GatewayError(.unauthorized, "a valid caller token is required (Authorization: Bearer <token> or X-Sensgate-Token)")
        }
        return caller
    }

    static func token(in headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return headers[Self.tokenHeader]
    }
}
