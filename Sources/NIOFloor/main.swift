// For scale in scripts/bench.sh: the least an HTTP/1 server on swift-nio does per request (NIO's codec with its
// pipelining helper, one fixed 775-byte JSON answer, no routing, logging or metrics), as the C libcurl client
// (scripts/curl-floor.c) is the least the passthrough's upstream half can cost. Not part of the product.
import NIOCore
import NIOHTTP1
import NIOPosix

final class FixedAnswer: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let body: ByteBuffer
    private let head: HTTPResponseHead

    init(body: ByteBuffer) {
        self.body = body
        self.head = HTTPResponseHead(
            version: .http1_1, status: .ok,
            headers: ["content-type": "application/json", "content-length": String(body.readableBytes)])
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        context.write(self.wrapOutboundOut(.head(self.head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(self.body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 2, let port = Int(arguments[1]) else {
    print("usage: nio-floor <port>   (listens on 127.0.0.1, one event loop per core)")
    exit(2)
}
let body = ByteBuffer(repeating: UInt8(ascii: "x"), count: 775)
let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
            try channel.pipeline.syncOperations.addHandler(FixedAnswer(body: body))
        }
    }
    .bind(host: "127.0.0.1", port: port).get()
try await channel.closeFuture.get()
