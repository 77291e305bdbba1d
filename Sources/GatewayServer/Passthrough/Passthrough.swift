import HTTPTypes
import Hummingbird
import NIOCore
import Signing
import UpstreamClient

/// The signed passthrough of PRODUCT.md §4.1: forwards a request byte for byte, signed, and returns the upstream's
/// status, body and content type unchanged.
struct Passthrough: Sendable {
    let upstream: UpstreamClient
    let credentials: CredentialStore
    let maxBodyBytes: Int
    let metrics: GatewayMetrics

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        var request = request
        let target = request.head.path ?? "/"
        let body = try await request.collectBody(upTo: self.maxBodyBytes)
        context.record.bytesIn = body.readableBytes
        let method = request.method.rawValue

        var headers = ForwardedHeaders.select(from: request.headers)
        headers.append(("x-request-id", context.requestID))
        let sent = try await self.send(
            UpstreamRequest(method: method, target: target, headers: headers, body: body.readableBytes > 0 || method == "POST" ? body : nil),
            route: RouteLabel.of(target),
            context: context
        )
        guard (100...599).contains(sent.status) else {
            throw GatewayError(.upstreamMalformed, "SENS answered with an invalid status", upstreamStatus: sent.status)
        }
        var fields = HTTPFields()
        if let contentType = sent.contentType { fields[.contentType] = contentType }
        if let retryAfter = sent.retryAfterSeconds { fields[.retryAfter] = String(retryAfter) }
        return Response(status: HTTPResponse.Status(code: sent.status), headers: fields, body: .init(byteBuffer: sent.body))
    }

    /// Signs (at send time, so every attempt gets a fresh timestamp) and sends one request.
    func send(_ request: UpstreamRequest, route: String, context: GatewayRequestContext) async throws(GatewayError) -> UpstreamResponse {
        var request = request
        let signed = self.credentials.signer.sign(method: request.method, target: request.target)
        request.headers.append((SignatureHeader.timestamp, signed.timestamp))
        request.headers.append((SignatureHeader.accessKey, signed.accessKey))
        request.headers.append((SignatureHeader.signature, signed.signature))
        let start = ContinuousClock.now
        do {
            let response = try await self.upstream.execute(request)
            context.record.upstreamStatus = response.status
            self.metrics.recordUpstream(route: route, outcome: "\(response.status / 100)xx", duration: ContinuousClock.now - start)
            return response
        } catch {
            self.metrics.recordUpstream(route: route, outcome: error.kind.rawValue, duration: ContinuousClock.now - start)
            throw GatewayError(upstream: error)
        }
    }
}
