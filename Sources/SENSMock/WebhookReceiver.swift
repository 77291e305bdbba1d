import NIOCore
import NIOHTTP1
import NIOPosix
import Signing
import Synchronization

/// A webhook receiver on loopback for tests and the demo: records every delivery, checks its Standard Webhooks
/// signature (PRODUCT.md §6), and answers from a script (e.g. 500 twice, then 200).
public final class WebhookReceiver: Sendable {
    /// One delivery as it arrived.
    public struct Delivery: Sendable {
        /// The request-target it was POSTed to.
        public var target: String
        public var id: String?
        public var timestamp: String?
        public var signature: String?
        public var body: [UInt8]
        /// Whether `webhook-signature` is the receiver's secret's signature of the id, timestamp and body.
        public var signatureValid: Bool
        /// What the receiver answered.
        public var status: Int
        public var text: String { String(decoding: self.body, as: UTF8.self) }
    }

    /// The tests' secret (the Standard Webhooks specification's example).
    public static let secretText = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    private let secret: WebhookSecret?
    private let onDelivery: @Sendable (Delivery) -> Void
    private let state = Mutex<(deliveries: [Delivery], script: [Int], headers: [(String, String)])>(([], [], []))
    private let channel: Mutex<(any Channel)?> = Mutex(nil)

    /// - Parameters:
    ///   - secret: The `whsec_` secret deliveries are verified with.
    ///   - onDelivery: Called with each delivery as it arrives (the demo prints it).
    public init(secret: String = WebhookReceiver.secretText, onDelivery: @escaping @Sendable (Delivery) -> Void = { _ in }) {
        self.secret = WebhookSecret(secret)
        self.onDelivery = onDelivery
    }

    /// Answers the next deliveries with these statuses, then 200.
    public func answer(_ statuses: [Int], headers: [(String, String)] = []) {
        self.state.withLock { $0.script.append(contentsOf: statuses); $0.headers = headers }
    }

    /// From now on every delivery is answered 200.
    public func recover() {
        self.state.withLock { $0.script.removeAll(); $0.headers = [] }
    }

    public var deliveries: [Delivery] { self.state.withLock { $0.deliveries } }

    /// The ids of the events answered 2xx.
    public var deliveredIds: Set<String> { Set(self.deliveries.filter { (200..<300).contains($0.status) }.compactMap(\.id)) }

    /// Starts listening on loopback. - Returns: The port.
    public func start() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(receiver: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.channel.withLock { $0 = channel }
        return channel.localAddress?.port ?? 0
    }

    public func stop() async {
        let channel = self.channel.withLock { $0 }
        try? await channel?.close()
    }

    fileprivate func received(_ head: HTTPRequestHead, body: [UInt8]) -> (Int, [(String, String)]) {
        let id = head.headers.first(name: "webhook-id")
        let timestamp = head.headers.first(name: "webhook-timestamp")
        let signature = head.headers.first(name: "webhook-signature")
        var valid = false
        if let secret = self.secret, let id, let timestamp, let seconds = Int64(timestamp), let signature {
            valid = constantTimeEquals(secret.signature(id: id, timestamp: seconds, body: body), signature)
        }
        let (delivery, headers) = self.state.withLock { state in
            let (status, headers) = state.script.isEmpty ? (200, []) : (state.script.removeFirst(), state.headers)
            let delivery = Delivery(
                target: head.uri, id: id, timestamp: timestamp, signature: signature, body: body, signatureValid: valid, status: status)
            state.deliveries.append(delivery)
            return (delivery, headers)
        }
        self.onDelivery(delivery)
        return (delivery.status, headers)
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let receiver: WebhookReceiver
        private let pending = Mutex<(HTTPRequestHead?, [UInt8])>((nil, []))

        init(receiver: WebhookReceiver) {
            self.receiver = receiver
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.pending.withLock { $0 = (head, []) }
            case .body(var buffer):
                let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
                self.pending.withLock { $0.1 += bytes }
            case .end:
                let (head, body) = self.pending.withLock { $0 }
                guard let head else { return }
                let (status, extra) = self.receiver.received(head, body: body)
                var headers = HTTPHeaders([("content-length", "2")])
                for (name, value) in extra { headers.add(name: name, value: value) }
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
