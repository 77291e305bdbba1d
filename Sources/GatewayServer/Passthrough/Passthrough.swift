import SENSClient
import NIOCore
import NIOHTTP1
import UpstreamClient

/// The signed passthrough of PRODUCT.md §4.1: forwards a request byte for byte, signed, and returns the upstream's
/// status, body and content type unchanged.
struct Passthrough: Sendable {
    let upstream: SignedUpstream
    let maxBodyBytes: Int
    /// Where tracked sends are recorded (PRODUCT.md §6).
    let tracking: Tracking

    func respond(to exchange: Exchange) throws(GatewayError) -> Reply {
        // Decided before the body is read: a caller refused gets its 401 at once.
        try exchange.record.caller?.authorize(Operation(passthrough: exchange.target, method: exchange.method))
        let tracked = self.tracking.send(exchange)
        // The body counts against the budget until SENS has answered (curl sends from the same buffer).
        return .readBody(limit: self.maxBodyBytes, heldUntilAnswered: true) { body in
            let record = exchange.record
            record.bytesIn = body.readableBytes
            let request = Self.upstreamRequest(exchange, body: body)
            return .later { responder in
                self.upstream.send(request, route: record.route, record: record, cancellation: nil) { sent in
                    let answer = sent.mapError { GatewayError($0, method: request.method) }.flatMap(Self.answer)
                    guard let tracked, case .success(let accepted) = answer, accepted.status == .accepted else {
                        return responder.answer(answer)
                    }
                    // The record is committed before SENS's answer goes back.
                    self.tracking.record(tracked, body: body, accepted: accepted, caller: record.caller?.name) { responder.answer(.success($0)) }
                }
            }
        }
    }

    /// What goes upstream for a caller's request: the same method, target and body, and the headers that may be
    /// forwarded plus the request id (the signature is added per attempt).
    static func upstreamRequest(_ exchange: Exchange, body: ByteBuffer) -> UpstreamRequest {
        let method = exchange.method
        var headers = ForwardedHeaders.select(from: exchange.head.headers)
        headers.append(("x-request-id", exchange.record.requestID))
        return UpstreamRequest(
            method: method, target: exchange.target, headers: headers, body: body.readableBytes > 0 || method == "POST" ? body : nil)
    }

    /// What goes back to the caller: SENS's status, body, content type and `Retry-After`, unchanged.
    static func answer(_ sent: UpstreamResponse) -> Result<Answer, GatewayError> {
        guard (200...599).contains(sent.status) else {
            return .failure(GatewayError(.upstreamMalformed, "SENS answered with an invalid status", upstreamStatus: sent.status))
        }
        return .success(
            Answer(
                status: HTTPResponseStatus(statusCode: sent.status), contentType: sent.contentType,
                retryAfterSeconds: sent.retryAfterSeconds, body: sent.body))
    }
}
