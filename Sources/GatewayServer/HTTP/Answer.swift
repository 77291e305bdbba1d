public import NIOCore
public import NIOHTTP1

/// A final answer to one request: what a route produces and ``HTTPExchangeHandler`` writes. The handler adds the
/// framing (`Content-Length`, `Connection`), the request id and the date.
public struct Answer: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String?
    /// Seconds for `Retry-After`, when the caller should wait before trying again.
    public var retryAfterSeconds: Int?
    public var body: ByteBuffer
    /// Further headers of the gateway's own (`X-Sensgate-Tracking`).
    public var headers: [(String, String)] = []

    public init(status: HTTPResponseStatus, contentType: String?, retryAfterSeconds: Int? = nil, body: ByteBuffer) {
        self.status = status
        self.contentType = contentType
        self.retryAfterSeconds = retryAfterSeconds
        self.body = body
    }

    /// A JSON answer.
    static func json(_ status: HTTPResponseStatus = .ok, _ bytes: some Sequence<UInt8>) -> Answer {
        Answer(status: status, contentType: "application/json", body: ByteBuffer(bytes: bytes))
    }

    /// A JSON answer from literal text.
    static func json(_ status: HTTPResponseStatus, text: String) -> Answer {
        Answer(status: status, contentType: "application/json", body: ByteBuffer(string: text))
    }
}

/// How a route answers a request. Routes run on the connection's event loop and never block it: what they cannot
/// answer at once (an upstream call) they answer ``later(_:)``.
enum Reply {
    /// The answer, at once.
    case answer(Answer)
    /// The contract's error envelope, at once.
    case failure(GatewayError)
    /// Read the whole request body first — at most `limit` bytes, held against the process's ``BodyBudget`` — then
    /// continue with it. The client is told to send it (`100 Continue`) only now. The budget is given back when the
    /// answer is written if `heldUntilAnswered` (the body goes upstream, sent from the same buffer), else as soon as
    /// `then` returns.
    case readBody(limit: Int, heldUntilAnswered: Bool, then: (ByteBuffer) throws(GatewayError) -> Reply)
    /// The answer comes through the responder, from any thread, exactly once.
    case later((Responder) -> Void)
}

/// Hands a route's late answer to the connection it belongs to, from any thread.
struct Responder: Sendable {
    /// The connection's event loop: work that must not run on the upstream client's thread (normalizing) runs here.
    let eventLoop: any EventLoop
    let deliver: @Sendable (Result<Answer, GatewayError>) -> Void

    /// Answers the request (at most once; later calls are ignored by the connection).
    func answer(_ result: Result<Answer, GatewayError>) {
        if self.eventLoop.inEventLoop {
            self.deliver(result)
        } else {
            let deliver = self.deliver
            self.eventLoop.execute { deliver(result) }
        }
    }

    /// Runs `work` on the connection's event loop.
    func onLoop(_ work: @escaping @Sendable () -> Void) {
        if self.eventLoop.inEventLoop { work() } else { self.eventLoop.execute(work) }
    }
}
