import SENSClient
import HTTPTypes
import Hummingbird
import NIOCore
import UpstreamClient

/// The signed passthrough of PRODUCT.md §4.1: forwards a request byte for byte, signed, and returns the upstream's
/// status, body and content type unchanged.
struct Passthrough: Sendable {
    let upstream: SignedUpstream
    let maxBodyBytes: Int
    let bodyBudget: BodyBudget

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        var request = request
        // Decided before the body is read: a caller refused gets its 401 at once.
        try context.record.caller?.authorize(Operation(passthrough: request.head.path ?? "", method: request.method.rawValue))
        let head = request.head
        // The body counts against the budget until SENS has answered (curl sends from the same buffer).
        let sent = try await request.withWholeBody(upTo: self.maxBodyBytes, budget: self.bodyBudget, context: context) { body in
            context.record.bytesIn = body.readableBytes
            return try await self.upstream.send(
                Self.upstreamRequest(head, body: body, requestID: context.requestID), route: context.record.route, record: context.record)
        }
        let (status, fields, responseBody) = try Self.answer(sent)
        return Response(status: status, headers: fields, body: .init(byteBuffer: responseBody))
    }

    /// What goes upstream for a caller's request: the same method, target and body, and the headers that may be
    /// forwarded plus the request id (the signature is added per attempt).
    static func upstreamRequest(_ head: HTTPRequest, body: ByteBuffer, requestID: String) -> UpstreamRequest {
        let method = head.method.rawValue
        var headers = ForwardedHeaders.select(from: head.headerFields)
        headers.append(("x-request-id", requestID))
        return UpstreamRequest(
            method: method, target: head.path ?? "/", headers: headers, body: body.readableBytes > 0 || method == "POST" ? body : nil)
    }

    /// What goes back to the caller: SENS's status, body, content type and `Retry-After`, unchanged.
    static func answer(_ sent: UpstreamResponse) throws(GatewayError) -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        guard (100...599).contains(sent.status) else {
            throw GatewayError(.upstreamMalformed, "SENS answered with an invalid status", upstreamStatus: sent.status)
        }
        var fields = HTTPFields()
        if let contentType = sent.contentType { fields[.contentType] = contentType }
        if let retryAfter = sent.retryAfterSeconds { fields[.retryAfter] = String(retryAfter) }
        return (HTTPResponse.Status(code: sent.status), fields, sent.body)
    }
}
