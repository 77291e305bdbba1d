import DeliveryResults
import Hummingbird
import HTTPTypes
import Logging
import NIOCore

/// Turns every error into the contract's JSON envelope, so callers never see a framework error page.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as GatewayError {
            return Self.response(for: error, context: context)
        } catch let error as HTTPError {
            return Self.response(for: Self.map(status: error.status, message: error.body), context: context)
        } catch let error as any HTTPResponseError {
            // e.g. NIOTooManyBytesError from collecting a body over the limit.
            return Self.response(for: Self.map(status: error.status, message: nil), context: context)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(String(describing: type(of: error)))"])
            return Self.response(for: GatewayError(.internalError, "internal error"), context: context)
        }
    }

    /// Hummingbird's own errors: unmatched routes, body limits.
    static func map(status: HTTPResponse.Status, message: String?) -> GatewayError {
        switch status {
        case .notFound: GatewayError(.notFound, "no such route")
        case .contentTooLarge: GatewayError(.payloadTooLarge, "request body is over the limit")
        case .methodNotAllowed: GatewayError(.methodNotAllowed, "method not allowed on this route")
        case .badRequest: GatewayError(.invalidRequest, message ?? "bad request")
        default: GatewayError(.internalError, "internal error")
        }
    }

    static func response(for error: GatewayError, context: Context) -> Response {
        context.record.errorCode = error.code.rawValue
        context.record.resultClass = error.code.errorClass
        if context.record.upstreamStatus == nil { context.record.upstreamStatus = error.upstreamStatus }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retryAfter = error.retryAfterSeconds { headers[.retryAfter] = String(retryAfter) }
        let body = ByteBuffer(bytes: error.envelope(requestID: context.requestID))
        return Response(status: error.code.status, headers: headers, body: .init(byteBuffer: body))
    }
}
