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
        guard let tokens = self.store.tokens, !Self.open.contains(request.uri.path) else {
            return try await next(request, context)
        }
        guard let presented = Self.token(in: request.headers), let caller = tokens.authenticate(presented) else {
            throw GatewayError(.unauthorized, "a valid caller token is required (Authorization: Bearer <token> or X-Sensgate-Token)")
        }
        context.record.caller = caller
        let target = request.head.path ?? ""
        if RequestTarget.isPassthrough(target) {
            guard caller.allows(passthroughTarget: target) else {
                throw GatewayError(.unauthorized, "caller \(caller.name) may not use this path")
            }
        } else if let channel = Self.resultsChannel(request.uri.path), !caller.allows(channel: channel) {
            throw GatewayError(.unauthorized, "caller \(caller.name) may not use channel \(channel)")
        }
        return try await next(request, context)
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
