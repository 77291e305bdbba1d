import HTTPTypes
import Hummingbird

/// With caller tokens configured, lets in only requests that carry a valid one (`Authorization: Bearer …` or
/// `X-Sensgate-Token`) for a channel and path the caller may use. Health, readiness and metrics stay open for probes
/// and scrapers.
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
    /// - Throws: ``GatewayError`` `unauthorized` for a missing or unknown token, or a channel or path the caller may
    ///   not use.
    static func authorize(_ head: HTTPRequest, store: CallerStore) throws(GatewayError) -> Caller? {
        // Without tokens there is nothing to check (and nothing to work out per request).
        guard let tokens = store.tokens else { return nil }
        let target = head.path ?? ""
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !Self.open.contains(path) else { return nil }
        guard let presented = Self.token(in: head.headerFields), let caller = tokens.authenticate(presented) else {
            throw GatewayError(.unauthorized, "a valid caller token is required (Authorization: Bearer <token> or X-Sensgate-Token)")
        }
        if RequestTarget.isPassthrough(target) {
            guard caller.allows(passthroughTarget: target) else {
                throw GatewayError(.unauthorized, "caller \(caller.name) may not use this path")
            }
        } else if let channel = Self.resultsChannel(path), !caller.allows(channel: channel) {
            throw GatewayError(.unauthorized, "caller \(caller.name) may not use channel \(channel)")
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

    /// `/v1/results/{channel}…` → channel.
    static func resultsChannel(_ path: String) -> String? {
        guard path.hasPrefix("/v1/results/") else { return nil }
        return path.dropFirst("/v1/results/".count).split(separator: "/").first.map(String.init)
    }
}
