import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1 channel with one extra handler that sees the raw request-target.
///
/// NIO's conversion to HTTP types turns an absolute-form target (`GET http://host/path`) into a plain path, so the
/// router could no longer tell it apart. ``OriginFormHandler`` runs before that conversion and marks such targets.
struct OriginFormChannel: ServerChildChannel {
    let inner: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        self.inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)
            try channel.pipeline.syncOperations.addHandler(OriginFormHandler(), position: .before(codec))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

/// Replaces any request-target that is not origin-form with ``marker``, which the router rejects with 400.
final class OriginFormHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    /// Contains a space, which no parsed request-target can: it cannot collide with a real path.
    static let marker = "/ non-origin-form"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .head(var head) = part, head.uri.utf8.first != UInt8(ascii: "/") {
            head.uri = Self.marker
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with sensgate's request-target check in front.
    static func gatewayHTTP1(idleTimeout: TimeAmount) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            OriginFormChannel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)))
        }
    }
}
