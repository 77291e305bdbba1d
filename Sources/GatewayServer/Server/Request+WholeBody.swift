import HTTPTypes
import Hummingbird
import NIOCore

extension Request {
    /// The request body, whole, handed to `body` while it is counted against the process's ``BodyBudget``: for
    /// every route that reads one.
    ///
    /// A body over `limit` (announced or sent) is `413 payload_too_large`; one that does not fit in the budget now
    /// (the announced length, or `limit` when none is announced) is `503 overloaded`, before a byte of it is read. A
    /// body that stops short — the client closed or half-closed the connection mid-body, or sent fewer bytes than its
    /// `Content-Length` — is `400 invalid_request`: a truncated request is never forwarded. A client that sent
    /// `Expect: 100-continue` is told to send the body now, once the route has decided to read it (an earlier
    /// refusal — `401`, `413` — is then answered without it).
    /// - Parameters:
    ///   - limit: The largest body accepted, in bytes.
    ///   - budget: The bytes all connections' bodies may hold at once.
    ///   - context: The request's context, for its connection.
    ///   - body: Works with the body; the budget is given back when it returns.
    mutating func withWholeBody<T>(
        upTo limit: Int, budget: BodyBudget, context: GatewayRequestContext, _ body: (ByteBuffer) async throws -> T
    ) async throws -> T {
        let announced = self.headers[.contentLength].flatMap { Int($0) }
        if let announced, announced > limit { throw Self.tooLarge }
        let reserved = announced ?? limit
        guard budget.reserve(reserved) else {
            throw GatewayError(.overloaded, "the gateway holds as many request bodies as it may; try again shortly", retryAfterSeconds: 1)
        }
        defer { budget.release(reserved) }
        if self.headers[.expect] != nil { context.channel.triggerUserOutboundEvent(ExchangeGuardHandler.SendContinue(), promise: nil) }
        let collected: ByteBuffer
        do {
            collected = try await self.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Self.tooLarge
        } catch {
            throw Self.cut
        }
        // Hummingbird's body sequence also ends quietly when the connection does: the length tells.
        if let announced, collected.readableBytes != announced { throw Self.cut }
        return try await body(collected)
    }

    private static var tooLarge: GatewayError { GatewayError(.payloadTooLarge, "request body is over the limit") }
    private static var cut: GatewayError { GatewayError(.invalidRequest, "the request body did not arrive whole") }
}
