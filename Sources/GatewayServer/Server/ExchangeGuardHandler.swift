import NIOCore
import NIOHTTP1
import Synchronization

/// Per connection, in front of Hummingbird's connection loop: the parts of HTTP/1.1 that loop leaves open
/// (PRODUCT.md §4.6), decided by ``Exchanges`` and carried out here.
///
/// - A request Hummingbird must refuse is marked: its target is replaced with ``marker(for:)`` (a text no parsed
///   target can be), which ``RequestTargetMiddleware`` turns into `400 invalid_request`: a target that is not
///   origin-form (NIO's conversion to HTTP types would make `GET http://host/p` look like `/p`), or an HTTP/1.1
///   request without exactly one `Host`.
/// - A request that ends the connection — HTTP/1.0 without keep-alive, `Connection: close`, `CONNECT` or an upgrade
///   (after which the parser no longer frames requests) — reaches the loop with `Connection: close`; its answer says
///   so and the connection is closed once it is written.
/// - `Expect: 100-continue` gets its `100 Continue` as soon as every earlier answer is written, unless the announced
///   body is over the limit; a final answer given without it (`413`, `401`, `400`) closes the connection, since the
///   client may never send the body.
/// - A client too slow to send a head or a body (slowloris) is disconnected; connections beyond the cap are closed.
///
/// Pipelined requests are answered in order by the loop itself (it reads the next request only after answering the
/// last), and a request the parser rejects is answered after every earlier one for the same reason.
final class ExchangeGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The target a refused request reaches the router with: a space cannot appear in a parsed request-target.
    static func marker(for rejection: RequestTarget.Rejection) -> String { "/ " + rejection.rawValue }

    /// The rejection a marked target stands for.
    static func rejection(marked target: String) -> RequestTarget.Rejection? {
        guard target.utf8.starts(with: "/ ".utf8) else { return nil }
        return RequestTarget.Rejection(rawValue: String(target.dropFirst(2)))
    }

    let limits: ConnectionLimits
    private let open: AtomicCount
    private var counted = false
    private var timer: Scheduled<Void>?
    private var exchanges: Exchanges

    init(limits: ConnectionLimits, open: AtomicCount) {
        self.limits = limits
        self.open = open
        self.exchanges = Exchanges(maxBodyBytes: limits.maxBodyBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let count = self.open.value.wrappingAdd(1, ordering: .relaxed).newValue
        self.counted = true
        if count > self.limits.maxConnections {
            context.close(promise: nil)
            return
        }
        // The first request's head must arrive within the client timeout.
        self.arm(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        if self.counted {
            self.open.value.wrappingSubtract(1, ordering: .relaxed)
            self.counted = false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(var head):
            // The body must arrive within the client timeout too.
            self.arm(context: context)
            let action = self.exchanges.receivedHead(Exchanges.Head(head))
            if let rejection = action.rejection {
                head.uri = Self.marker(for: rejection)
                // NIO's conversion to HTTP types reads a CONNECT target as an authority; the marker is a path.
                if head.method == .CONNECT { head.method = .GET }
            }
            if action.closesConnection { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
            if action.sendContinue { self.sendContinue(context: context) }
        case .body:
            context.fireChannelRead(data)
        case .end:
            // Between requests the server's idle timeout applies.
            self.timer?.cancel()
            self.timer = nil
            self.exchanges.receivedEnd()
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            if self.exchanges.writingFinalHead() { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
        case .head, .body:
            context.write(data, promise: promise)
        case .end:
            switch self.exchanges.writingEnd() {
            case .none:
                context.write(data, promise: promise)
            case .sendContinue:
                context.write(data, promise: promise)
                self.sendContinue(context: context)
            case .close:
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
            }
        }
    }

    private func sendContinue(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    private func arm(context: ChannelHandlerContext) {
        self.timer?.cancel()
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: .nanoseconds(self.limits.clientTimeout.nanoseconds)) {
            channel.close(promise: nil)
        }
    }
}
