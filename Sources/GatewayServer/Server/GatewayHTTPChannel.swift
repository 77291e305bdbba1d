import SENSClient
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Limits on client connections.
struct ConnectionLimits: Sendable {
    /// Time a client has to send a request's head (from connecting, for the first request) and, separately, its body.
    var clientTimeout: Duration
    /// Client connections open at once; more are closed on accept.
    var maxConnections: Int
}

/// Hummingbird's HTTP/1 channel, every route served by its router, with one handler in front that owns what
/// Hummingbird's connection loop leaves open in HTTP/1.1 (``ExchangeGuardHandler``): `Host`, `100-continue`,
/// HTTP/1.0 and `Connection: close`, tunnels, non-origin-form targets, slow clients and the connection cap.
///
/// The handler sits before NIO's conversion to HTTP types, which would turn an absolute-form target
/// (`GET http://host/path`) into a plain path and hide the request's HTTP version.
struct GatewayHTTPChannel: ServerChildChannel {
    let inner: HTTP1Channel
    let limits: ConnectionLimits
    let open: AtomicCount
    let log: AccessLog

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        self.inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            // Reads of at most 16 KiB: Hummingbird's async channel buffers up to ten reads per connection ahead of its
            // task, and NIO's default reads grow to 64 KiB — 640 KiB per connection streaming a body (measured: two
            // hundred 1 MiB uploads at once took RSS up by 91 MB with only 8 MiB of bodies held).
            try channel.syncOptions?.setOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 16384))
            let pipeline = channel.pipeline.syncOperations
            let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(ExchangeGuardHandler(limits: self.limits, open: self.open, log: self.log), position: .before(codec))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with sensgate's exchange guard in front.
    static func gatewayHTTP1(idleTimeout: TimeAmount, limits: ConnectionLimits, log: AccessLog) -> HTTPServerBuilder {
        let open = AtomicCount()
        return HTTPServerBuilder { responder in
            GatewayHTTPChannel(
                inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)), limits: limits, open: open, log: log)
        }
    }
}
