import NIOHTTP1

/// With caller tokens configured, lets in only requests that carry a valid one (`Authorization: Bearer …` or
/// `X-Sensgate-Token`), and notes the caller. What the caller may then do is decided per operation by the caller
/// policy (``Caller/permits(_:)``), where each route knows its operations. Health, readiness and metrics stay open
/// for probes and scrapers.
enum CallerAuth {
    static let tokenHeader = "X-Sensgate-Token"
    static let open: Set<Substring> = ["/healthz", "/readyz", "/metrics"]

    /// The caller a request comes from, when caller tokens are configured.
    /// - Returns: The caller, or `nil` when no tokens are configured or the route is open.
    /// - Throws: ``GatewayError`` `unauthorized` for a missing or unknown token.
    static func authorize(_ exchange: Exchange, store: CallerStore) throws(GatewayError) -> Caller? {
        // Without tokens there is nothing to check (and nothing to work out per request).
        guard let tokens = store.tokens else { return nil }
        guard !Self.open.contains(exchange.path) else { return nil }
        guard let presented = Self.token(in: exchange.head.headers), let caller = tokens.authenticate(presented) else {
            throw GatewayError(.unauthorized, "a valid caller token is required (Authorization: Bearer <token> or X-Sensgate-Token)")
        }
        return caller
    }

    static func token(in headers: HTTPHeaders) -> String? {
        if let authorization = headers.first(name: "authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return headers.first(name: Self.tokenHeader)
    }
}
