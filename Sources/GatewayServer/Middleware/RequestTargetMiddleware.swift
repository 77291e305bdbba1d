import Hummingbird

/// Refuses malformed or path-confusing request-targets before routing, for every route.
struct RequestTargetMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let target = request.head.path ?? ""
        if let rejection = ExchangeGuardHandler.rejection(marked: target) {
            throw GatewayError(.invalidRequest, rejection.rawValue)
        }
        if let rejection = RequestTarget.validate(target) {
            throw GatewayError(.invalidRequest, rejection.rawValue)
        }
        return try await next(request, context)
    }
}
