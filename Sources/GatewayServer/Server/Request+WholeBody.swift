import HTTPTypes
import Hummingbird
import NIOCore

extension Request {
    /// The request body, whole, for every route that reads one.
    ///
    /// A body over `limit` (announced or sent) is `413 payload_too_large`. A body that stops short — the client closed
    /// or half-closed the connection mid-body, or sent fewer bytes than its `Content-Length` — is
    /// `400 invalid_request`: a truncated request is never forwarded.
    /// A client that sent `Expect: 100-continue` is told to send the body now, once the route has decided to read it
    /// (an earlier refusal — `401`, `413` — is then answered without it).
    /// - Parameters:
    ///   - limit: The largest body accepted, in bytes.
    ///   - context: The request's context, for its connection.
    mutating func wholeBody(upTo limit: Int, context: GatewayRequestContext) async throws(GatewayError) -> ByteBuffer {
        let announced = self.headers[.contentLength].flatMap { Int($0) }
        if let announced, announced > limit { throw Self.tooLarge }
        if self.headers[.expect] != nil { context.channel.triggerUserOutboundEvent(ExchangeGuardHandler.SendContinue(), promise: nil) }
        let body: ByteBuffer
        do {
            body = try await self.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Self.tooLarge
        } catch {
            throw Self.cut
        }
        // Hummingbird's body sequence also ends quietly when the connection does: the length tells.
        if let announced, body.readableBytes != announced { throw Self.cut }
        return body
    }

    private static var tooLarge: GatewayError { GatewayError(.payloadTooLarge, "request body is over the limit") }
    private static var cut: GatewayError { GatewayError(.invalidRequest, "the request body did not arrive whole") }
}
