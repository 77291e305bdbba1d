import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Limits on client connections.
struct ConnectionLimits: Sendable {
    /// Time a client has to send a request's head (from connecting, for the first request) and, separately, its body.
    var clientTimeout: Duration
    /// Time a connection may sit between requests.
    var idleTimeout: Duration = .seconds(75)
    /// Client connections open at once; more are closed on accept.
    var maxConnections: Int
}

/// The HTTP/1.1 listener as a service: NIO's HTTP/1 codec and pipelining handler, then ``HTTPExchangeHandler``, on
/// every connection. On graceful shutdown it stops accepting, lets every connection finish the request it is
/// answering (NIO's quiescing), and returns once all are closed.
struct HTTPServer: Service {
    let host: String
    let port: Int
    let routes: Routes
    let limits: ConnectionLimits
    let logger: Logger
    let onRunning: @Sendable (Int) async -> Void
    /// Called when graceful shutdown begins, before connections drain (long waits are ended).
    var onShutdown: @Sendable () -> Void = {}

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let quiesce = ServerQuiescingHelper(group: group)
        let open = AtomicCount()
        let routes = self.routes
        let limits = self.limits
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            // Half-closed clients still get their answers.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Reads of at most 16 KiB: a connection streaming a body holds no more than that beyond the body itself.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 16384))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    // The socket stays registered for reading while an answer is owed (ReadAheadHandler says why).
                    try pipeline.addHandler(ReadAheadHandler())
                    // No reads while the client is not reading its answers: a client that pipelines and never reads
                    // would otherwise have every answer queued in memory (NIO's pipelining handler asks for the next
                    // request once an answer is queued, not once it is sent).
                    try pipeline.addHandler(BackPressureHandler())
                    // Graceful shutdown reaches the exchange handler as its own event (NIO's pipelining handler would
                    // close at once, dropping answers still queued for a slow reader).
                    try pipeline.addHandler(HTTPExchangeHandler.QuiesceForwarder())
                    // No outbound header validation: every answer's headers are written by the exchange handler from values
                    // that cannot hold a line break (numbers, checked request ids, SENS's content type as libcurl parsed it).
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false)
                    try pipeline.addHandler(HTTPExchangeHandler(routes: routes, limits: limits, open: open))
                }
            }
            .bind(host: self.host, port: self.port)
            .get()
        await self.onRunning(channel.localAddress?.port ?? 0)
        // Until graceful shutdown (or cancellation, which closes at once).
        do {
            try await gracefulShutdown()
        } catch {
            try? await channel.close()
            throw error
        }
        self.onShutdown()
        let closed = group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: closed)
        try await closed.futureResult.get()
    }
}
