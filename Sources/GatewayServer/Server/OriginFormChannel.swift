import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization

/// What connections may answer before the router (see ``DirectResponseHandler``).
struct DirectResponses: Sendable {
    /// Single-message result lookups.
    var results: DirectResultLookup
    var passthrough: DirectPassthrough
    var log: AccessLog
}

/// Limits on client connections.
struct ConnectionLimits: Sendable {
    /// Time a client has to send a request's head (from connecting, for the first request) and, separately, its body.
    var clientTimeout: Duration
    /// Client connections open at once; more are closed on accept.
    var maxConnections: Int
}

/// Client connections open now, shared by every connection of one server.
final class ConnectionCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Hummingbird's HTTP/1 channel with one extra handler that sees the raw request-target and guards the connection,
/// and one that answers the hot routes before the router (``DirectResponseHandler``).
///
/// NIO's conversion to HTTP types turns an absolute-form target (`GET http://host/path`) into a plain path, so the
/// router could no longer tell it apart. ``ConnectionGuardHandler`` runs before that conversion and marks such targets.
struct OriginFormChannel: ServerChildChannel {
    let inner: HTTP1Channel
    let limits: ConnectionLimits
    let open: ConnectionCounter
    /// What ``DirectResponseHandler`` needs: the answers it may give before the router.
    let direct: DirectResponses

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        self.inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(ConnectionGuardHandler(limits: self.limits, open: self.open), position: .before(codec))
            // After the keep-alive and idle-timeout state handler, so that it sees these requests and responses too.
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(
                DirectResponseHandler(results: self.direct.results, passthrough: self.direct.passthrough, log: self.direct.log),
                position: .after(state))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

/// Per connection: replaces any request-target that is not origin-form with ``marker`` (the router rejects it with
/// 400), closes a connection whose client is too slow to send a head or a body (slowloris), and closes
/// connections beyond the limit.
final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    /// Contains a space, which no parsed request-target can: it cannot collide with a real path.
    static let marker = "/ non-origin-form"

    let limits: ConnectionLimits
    private let open: ConnectionCounter
    private var counted = false
    private var timer: Scheduled<Void>?

    init(limits: ConnectionLimits, open: ConnectionCounter) {
        self.limits = limits
        self.open = open
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
        let part = self.unwrapInboundIn(data)
        switch part {
        case .head(var head):
            // The body must arrive within the client timeout too.
            self.arm(context: context)
            if head.uri.utf8.first != UInt8(ascii: "/") {
                head.uri = Self.marker
                context.fireChannelRead(self.wrapInboundOut(.head(head)))
                return
            }
        case .body:
            break
        case .end:
            // Between requests the server's idle timeout applies.
            self.timer?.cancel()
            self.timer = nil
        }
        context.fireChannelRead(data)
    }

    private func arm(context: ChannelHandlerContext) {
        self.timer?.cancel()
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: .nanoseconds(self.limits.clientTimeout.nanoseconds)) {
            channel.close(promise: nil)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with sensgate's request-target check and connection guard in front.
    static func gatewayHTTP1(idleTimeout: TimeAmount, limits: ConnectionLimits, direct: DirectResponses) -> HTTPServerBuilder {
        let open = ConnectionCounter()
        return HTTPServerBuilder { responder in
            OriginFormChannel(
                inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)), limits: limits, open: open,
                direct: direct)
        }
    }
}
