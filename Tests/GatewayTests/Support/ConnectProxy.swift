import NIOCore
import NIOPosix
import Synchronization

/// A minimal HTTP `CONNECT` proxy on loopback, as an egress proxy in front of SENS: it reads one `CONNECT host:port`,
/// opens that connection, answers 200 and then relays bytes both ways without looking at them (TLS passes through).
final class ConnectProxy: Sendable {
    private let targets = Mutex<[String]>([])

    /// The `host:port` of every `CONNECT` received, in order.
    var connectTargets: [String] { self.targets.withLock { $0 } }

    /// Runs the proxy for as long as `body` runs.
    func run(_ body: @Sendable (_ port: Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let port = server.channel.localAddress?.port ?? 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await server.executeThenClose { clients in
                    try await withThrowingDiscardingTaskGroup { connections in
                        for try await client in clients {
                            connections.addTask { try? await self.serve(client) }
                        }
                    }
                }
            }
            defer { group.cancelAll() }
            do {
                try await body(port)
            } catch {
                try? await server.channel.close()
                throw error
            }
            try? await server.channel.close()
        }
    }

    private func serve(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        try await client.executeThenClose { fromClient, toClient in
            var reader = fromClient.makeAsyncIterator()
            var head = ByteBuffer()
            var headEnd: Int? = nil
            while headEnd == nil, var chunk = try await reader.next() {
                head.writeBuffer(&chunk)
                headEnd = head.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound
            }
            guard let headEnd, let text = head.readString(length: headEnd - head.readerIndex) else { return }
            let words = text.split(separator: " ")
            guard words.count >= 2, words[0] == "CONNECT", let colon = words[1].lastIndex(of: ":"),
                  let port = Int(words[1][words[1].index(after: colon)...]) else {
                try await toClient.write(ByteBuffer(string: "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"))
                return
            }
            self.targets.withLock { $0.append(String(words[1])) }
            let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: String(words[1][..<colon]), port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            // The upstream channel is handed to executeThenClose before anything else can throw: an NIOAsyncChannel
            // dropped unfinished is a fatal error (a client that left before the 200 crashed the test process).
            try await upstream.executeThenClose { fromUpstream, toUpstream in
                try await toClient.write(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n"))
                try await withThrowingTaskGroup(of: Void.self) { relay in
                    relay.addTask {
                        for try await chunk in fromUpstream { try await toClient.write(chunk) }
                    }
                    if head.readableBytes > 0 { try await toUpstream.write(head) }  // bytes sent right after the head
                    while let chunk = try await reader.next() { try await toUpstream.write(chunk) }
                    try await relay.next()
                }
            }
        }
    }
}
