@testable import GatewayServer
import NIOCore
import NIOEmbedded
import Testing

/// ``ReadAheadHandler`` on its own: what arrives while the pipeline holds its reads back is held, in order with the
/// events after it, and handed on when the pipeline asks; past the limit the socket is no longer read.
@Suite("Read-ahead")
struct ReadAheadTests {
    /// Stands for NIO's pipelining handler: passes the pipeline's reads on only while `wants`, and records what reaches it.
    final class Downstream: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = NIOAny
        var wants = false
        /// Stops wanting reads once a read arrives, as the pipelining handler does once a request is in.
        var pauseOnRead = false
        var events: [String] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.events.append("read:" + String(buffer: self.unwrapInboundIn(data)))
            if self.pauseOnRead { self.wants = false }
        }
        func channelReadComplete(context: ChannelHandlerContext) { self.events.append("complete") }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event { self.events.append("inputClosed") }
            if event is ChannelShouldQuiesceEvent { self.events.append("quiesce") }
        }
        func channelInactive(context: ChannelHandlerContext) { self.events.append("inactive") }
        func read(context: ChannelHandlerContext) {
            if self.wants { context.read() }
        }
    }

    /// Counts the reads that reach the socket (the channel's head).
    final class SocketReads: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var count = 0
        func read(context: ChannelHandlerContext) {
            self.count += 1
            context.read()
        }
    }

    static func channel(limit: Int) throws -> (EmbeddedChannel, SocketReads, Downstream) {
        let reads = SocketReads()
        let downstream = Downstream()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(ReadAheadHandler(limit: limit))
        try channel.pipeline.syncOperations.addHandler(downstream)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, reads, downstream)
    }

    /// A connection whose first request (`first`) is in and whose answer is owed: the pipeline asks for no reads.
    static func answerOwed(limit: Int, first: String) throws -> (EmbeddedChannel, SocketReads, Downstream) {
        let (channel, reads, downstream) = try Self.channel(limit: limit)
        downstream.wants = true
        downstream.pauseOnRead = true
        channel.read()
        try channel.writeInbound(ByteBuffer(string: first))
        return (channel, reads, downstream)
    }

    @Test("bytes the pipeline asked for pass straight through")
    func passesThrough() throws {
        let (channel, _, downstream) = try Self.channel(limit: 64)
        downstream.wants = true
        channel.read()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        #expect(downstream.events == ["read:GET / HTTP/1.1\r\n\r\n", "complete"])
        _ = try channel.finish()
    }

    @Test("held while the pipeline holds its reads back, then handed on in order with the half-close after them")
    func holdsThenHandsOver() throws {
        let (channel, reads, downstream) = try Self.answerOwed(limit: 64, first: "one")
        // An answer is owed: the pipeline asks for nothing, yet the socket is still read (read ahead).
        #expect(reads.count == 2, "the pipeline's read, then one read ahead")
        let ahead = reads.count
        try channel.writeInbound(ByteBuffer(string: "two"))
        try channel.writeInbound(ByteBuffer(string: "three"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(reads.count > ahead, "still read ahead while little is held")
        #expect(downstream.events == ["read:one", "complete"])
        // The answer is written: the pipeline asks again, and gets what came, then the half-close.
        downstream.wants = true
        channel.read()
        channel.embeddedEventLoop.run()
        #expect(downstream.events == ["read:one", "complete", "read:twothree", "complete", "inputClosed"])
        _ = try channel.finish()
    }

    @Test("past the limit the socket is not read until the pipeline takes what is held")
    func stopsAtTheLimit() throws {
        let (channel, reads, downstream) = try Self.answerOwed(limit: 8, first: "first")
        try channel.writeInbound(ByteBuffer(string: "0123456789"))
        let atLimit = reads.count
        try channel.writeInbound(ByteBuffer(string: "more"))
        #expect(reads.count == atLimit, "no read ahead once the limit is held")
        downstream.wants = true
        channel.read()
        channel.embeddedEventLoop.run()
        #expect(downstream.events.last == "complete")
        #expect(downstream.events.contains("read:0123456789more"))
        #expect(reads.count > atLimit, "reading resumes once what was held is handed on")
        _ = try channel.finish()
    }

    @Test("graceful shutdown passes what is held at once: the answer owed can say Connection: close")
    func shutdownPassesHeldBytes() throws {
        let (channel, _, downstream) = try Self.answerOwed(limit: 64, first: "one")
        try channel.writeInbound(ByteBuffer(string: "POST /send"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(downstream.events == ["read:one", "complete", "quiesce"])
        _ = try? channel.finish()
    }

    @Test("what is held when the client goes is dropped, never acted on")
    func dropsOnClose() throws {
        let (channel, _, downstream) = try Self.answerOwed(limit: 64, first: "one")
        try channel.writeInbound(ByteBuffer(string: "POST /send"))
        channel.pipeline.fireChannelInactive()
        channel.embeddedEventLoop.run()
        #expect(downstream.events == ["read:one", "complete", "inactive"])
        _ = try? channel.finish()
    }
}
