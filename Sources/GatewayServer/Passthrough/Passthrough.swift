import HTTPTypes
import Hummingbird
import NIOCore
import UpstreamClient

/// The signed passthrough of PRODUCT.md §4.1: forwards a request byte for byte, signed, and returns the upstream's
/// status, body and content type unchanged.
struct Passthrough: Sendable {
    let upstream: SignedUpstream
    let maxBodyBytes: Int

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        var request = request
        let target = request.head.path ?? "/"
        let body = try await request.collectBody(upTo: self.maxBodyBytes)
        context.record.bytesIn = body.readableBytes
        let method = request.method.rawValue

        var headers = ForwardedHeaders.select(from: request.headers)
        headers.append(("x-request-id", context.requestID))
        let sent = try await self.upstream.send(
            UpstreamRequest(method: method, target: target, headers: headers, body: body.readableBytes > 0 || method == "POST" ? body : nil),
            route: context.record.route,
            record: context.record
        )
        guard (100...599).contains(sent.status) else {
            throw GatewayError(.upstreamMalformed, "SENS answered with an invalid status", upstreamStatus: sent.status)
        }
        var fields = HTTPFields()
        if let contentType = sent.contentType { fields[.contentType] = contentType }
        if let retryAfter = sent.retryAfterSeconds { fields[.retryAfter] = String(retryAfter) }
        return Response(status: HTTPResponse.Status(code: sent.status), headers: fields, body: .init(byteBuffer: sent.body))
    }
}
