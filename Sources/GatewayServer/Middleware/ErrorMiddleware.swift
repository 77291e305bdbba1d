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
        let (status, headers, body) = Self.answer(for: error, record: context.record)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The error envelope as status, headers and body, noted in the request's record.
    static func answer(for error: GatewayError, record: RequestRecord) -> (HTTPResponse.Status, HTTPFields, [UInt8]) {
        record.errorCode = error.code.rawValue
        record.resultClass = error.errorClass.rawValue
        if record.upstreamStatus == nil { record.upstreamStatus = error.upstreamStatus }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let retryAfter = error.retryAfterSeconds { headers[.retryAfter] = String(retryAfter) }
        return (error.status, headers, error.envelope(requestID: record.requestID))
    }
}
