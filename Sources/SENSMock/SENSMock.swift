// SENSMock: a SENS-compatible upstream on loopback for tests and the demo — verifies NCP v2 signatures like SENS,
// serves delivery results in SENS's shapes, and injects faults on request.

public import NIOCore
import NIOHTTP1
import JSON
import NIOPosix
public import Signing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A fault the mock answers with instead of a normal response.
public enum Fault: Sendable, Equatable {
    /// Answer with this HTTP status and a SENS-style error body; `retryAfter` adds `Retry-After`.
    case status(Int, retryAfter: Int? = nil)
    /// Wait this many milliseconds, then answer normally.
    case delay(milliseconds: Int)
    /// Close the connection with a TCP reset, without answering.
    case reset
    /// Close the connection without answering, as a server that dropped a kept-alive connection does (a FIN).
    case close
    /// Promise a longer body in `Content-Length` than is sent, then close.
    case truncate
    /// A 200 whose body is not JSON.
    case garbage
    /// A 200 with a JSON body of about this many bytes.
    case huge(bytes: Int)
    /// A 200 whose body is valid JSON but not the shape SENS documents.
    case wrongShape
    /// A 200 with an HTML content type.
    case html
    /// Bytes that are not HTTP at all, then close.
    case notHTTP
    /// A 200 promising twice this many bytes, of which only these are sent; then nothing (the connection stays open).
    case stall(bytes: Int)
    /// A 200 with a well-formed SMS result for another message than the one asked for.
    case otherMessage
    /// A 200 with a well-formed SMS result for `fault-bom`, preceded by a UTF-8 byte-order mark.
    case byteOrderMark
    /// A 200 with a well-formed SMS result whose text holds a byte that is not UTF-8.
    case notUTF8

    /// Parses the fault named by a message id of the form `fault-<name>[-<number>]` (e.g. `fault-status-503`,
    /// `fault-delay-2000`), so tests and operators can trigger a fault through any route, `/v1` lookups included.
    public init?(messageID: Substring) {
        guard messageID.hasPrefix("fault-") else { return nil }
        let parts = messageID.dropFirst("fault-".count).split(separator: "-")
        guard let name = parts.first else { return nil }
        let number = parts.count > 1 ? Int(parts[1]) : nil
        switch name {
        case "status": guard let number else { return nil }; self = .status(number, retryAfter: parts.count > 2 ? Int(parts[2]) : nil)
        case "delay": self = .delay(milliseconds: number ?? 1000)
        case "reset": self = .reset
        case "close": self = .close
        case "truncate": self = .truncate
        case "garbage": self = .garbage
        case "huge": self = .huge(bytes: number ?? 8_000_000)
        case "wrongshape": self = .wrongShape
        case "html": self = .html
        case "nothttp": self = .notHTTP
        case "othermessage": self = .otherMessage
        case "stall": self = .stall(bytes: number ?? 100_000)
        case "bom": self = .byteOrderMark
        case "notutf8": self = .notUTF8
        default: return nil
        }
    }
}

/// What the mock received, for tests to check what reached the upstream.
public struct ReceivedRequest: Sendable {
    public var method: String
    /// The request-target exactly as received.
    public var target: String
    /// Header (name, value) pairs, names in lower case.
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Whether the NCP signature was present, fresh and valid.
    public var signatureValid: Bool
    /// The HTTP version the request came in: `1.1`, or `2` behind a TLS front that negotiated HTTP/2.
    public var httpVersion: String
    /// When the request's head and body had arrived (the rate SENS sees is counted by these).
    public var receivedAt: ContinuousClock.Instant = .now

    /// The first value of a header, by lower-case name.
    public func header(_ name: String) -> String? {
        self.headers.first { $0.0 == name }?.1
    }
}

/// A local SENS-compatible HTTP server.
///
/// Like SENS's API gateway it answers 401 to a request whose `x-ncp-apigw-signature-v2` is missing or wrong, whose
/// access key is unknown, or whose timestamp is more than five minutes off. It serves
/// `GET /{sms,brandmessage,alimtalk,friendtalk}/v2/services/{serviceId}/messages/{messageId}`, the same with
/// `?requestId=` for a whole request, and accepts `POST …/messages` sends, which it stores as pending results.
public final class SENSMock: Sendable {
    private struct State {
        var messages: [String: StoredMessage] = [:]
        /// Messages accepted through sends, by `product/messageId`: they evolve with time (``SentMessage``).
        var sent: [String: SentMessage] = [:]
        var requests: [String: [String]] = [:]
        var received: [ReceivedRequest] = []
        var queuedFaults: [Fault] = []
        var sendCount = 0
        var connections = 0
    }

    /// The access key the mock accepts.
    public let accessKey: String
    private let signer: Signer
    private let state = Mutex(State())
    private let channel: Mutex<(any Channel)?> = Mutex(nil)
    /// How far a timestamp may be from the mock's clock, as SENS allows.
    public static let timestampWindowMilliseconds: Int64 = 5 * 60 * 1000

    /// How long an accepted message takes to complete: `READY` for the first half, `PROCESSING` for the second.
    public let deliveryDelay: Duration

    /// Creates a mock that accepts one key pair and serves `messages`.
    /// - Parameter deliveryDelay: How long a message accepted through a send takes to reach its outcome
    ///   (``SentMessage`` says which outcome, by recipient number).
    public init(accessKey: String, secretKey: SecretKey, messages: [StoredMessage] = Fixtures.all, deliveryDelay: Duration = .seconds(3)) {
        self.deliveryDelay = deliveryDelay
        self.accessKey = accessKey
        self.signer = Signer(accessKey: accessKey, secretKey: secretKey)
        self.state.withLock { state in
            for message in messages { Self.store(message, in: &state) }
        }
    }

    /// Starts listening.
    /// - Parameters:
    ///   - host: The address to bind, loopback by default.
    ///   - port: The port, or 0 for any free one.
    /// - Returns: The bound port.
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.state.withLock { $0.connections += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MockHandler(mock: self))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        self.channel.withLock { $0 = channel }
        return channel.localAddress?.port ?? 0
    }

    /// Counts a connection accepted by a listener set up outside the mock (the tests' TLS front).
    public func connectionAccepted() {
        self.state.withLock { $0.connections += 1 }
    }

    /// The handler that answers requests arriving as HTTP/1 server parts: on an HTTP/1.1 pipeline, or on an HTTP/2
    /// stream behind NIOHTTP2's HTTP/1 codec. The mock itself listens in cleartext; tests put TLS in front with this.
    public func makeRequestHandler() -> any ChannelHandler {
        MockHandler(mock: self)
    }

    /// Stops listening; connections already open are closed by their peers.
    public func stop() async {
        let channel = self.channel.withLock { channel -> (any Channel)? in
            defer { channel = nil }
            return channel
        }
        try? await channel?.close()
    }

    /// Makes the next `count` requests (after signature checks) fail with `fault`.
    public func injectFault(_ fault: Fault, count: Int = 1) {
        self.state.withLock { $0.queuedFaults.append(contentsOf: Array(repeating: fault, count: count)) }
    }

    /// Every request received so far, oldest first.
    public var receivedRequests: [ReceivedRequest] { self.state.withLock { $0.received } }

    /// TCP connections accepted so far (to check that clients reuse connections).
    public var acceptedConnections: Int { self.state.withLock { $0.connections } }

    /// Sends accepted so far.
    public var acceptedSends: Int { self.state.withLock { $0.sendCount } }

    /// Forgets the received requests.
    public func clearReceived() { self.state.withLock { $0.received.removeAll() } }

    // MARK: Handling

    private static func store(_ message: StoredMessage, in state: inout State) {
        let key = message.product + "/" + message.messageId
        if state.messages.updateValue(message, forKey: key) == nil {
            state.requests[message.product + "/" + message.requestId, default: []].append(message.messageId)
        }
    }

    /// The answer to one complete request.
    enum Answer: Sendable {
        case respond(status: Int, contentType: String?, body: [UInt8], extraHeaders: [(String, String)])
        case fault(Fault, then: @Sendable () -> Answer)
    }

    func answer(method: String, target: String, headers: HTTPHeaders, body: [UInt8], version: HTTPVersion = .http1_1) -> Answer {
        let valid = self.verifySignature(method: method, target: target, headers: headers)
        var lowered: [(String, String)] = []
        lowered.reserveCapacity(headers.count)
        for (name, value) in headers { lowered.append((name.lowercased(), value)) }
        let queued = self.state.withLock { state -> Fault? in
            let httpVersion = version.minor == 0 ? "\(version.major)" : "\(version.major).\(version.minor)"
            state.received.append(
                ReceivedRequest(method: method, target: target, headers: lowered, body: body, signatureValid: valid, httpVersion: httpVersion))
            if valid, !state.queuedFaults.isEmpty { return state.queuedFaults.removeFirst() }
            return nil
        }
        guard valid else {
            return Self.json(401, #"{"error":{"errorCode":"200","message":"Authentication Failed","details":"Invalid authentication information."}}"#)
        }
        let path = target.split(separator: "?", maxSplits: 1).first ?? ""
        let lastSegment = path.split(separator: "/").last ?? ""
        if let fault = queued ?? Fault(messageID: lastSegment) {
            return .fault(fault, then: { self.route(method: method, target: target, body: body) })
        }
        return self.route(method: method, target: target, body: body)
    }

    private func verifySignature(method: String, target: String, headers: HTTPHeaders) -> Bool {
        guard let timestamp = headers.first(name: SignatureHeader.timestamp),
            let accessKey = headers.first(name: SignatureHeader.accessKey),
            let signature = headers.first(name: SignatureHeader.signature),
            let milliseconds = Int64(timestamp)
        else { return false }
        guard abs(Signer.nowMilliseconds() - milliseconds) <= Self.timestampWindowMilliseconds else { return false }
        guard constantTimeEquals(accessKey, self.accessKey) else { return false }
        return constantTimeEquals(signature, self.signer.signature(method: method, target: target, timestamp: timestamp))
    }

    private func route(method: String, target: String, body: [UInt8]) -> Answer {
        let parts = target.split(separator: "?", maxSplits: 1)
        let segments = (parts.first ?? "").split(separator: "/", omittingEmptySubsequences: false)
        let query = parts.count > 1 ? parts[1] : ""
        // ["", product, "v2", "services", serviceId, "messages", messageId?]
        guard segments.count >= 6, segments[0].isEmpty, segments[2] == "v2", segments[3] == "services", segments[5] == "messages",
            ["sms", "brandmessage", "alimtalk", "friendtalk"].contains(segments[1])
        else {
            return Self.notFound
        }
        let product = String(segments[1])
        switch (method, segments.count) {
        case ("GET", 7):
            let key = product + "/" + segments[6]
            let now = ContinuousClock.now
            guard let json = self.state.withLock({ $0.sent[key]?.json(now: now, delay: self.deliveryDelay) ?? $0.messages[key]?.json }) else {
                return Self.notFound
            }
            if product == "sms" {
                return Self.json(200, #"{"statusCode":"200","statusName":"success","messages":["# + json + "]}")
            }
            return Self.json(200, json)
        case ("GET", 6):
            guard let requestID = Self.queryValue("requestId", in: query) else {
                return Self.json(400, #"{"error":{"errorCode":"400","message":"requestId is required"}}"#)
            }
            let now = ContinuousClock.now
            // SENS lists an SMS request's messages without their delivery status; Kakao lists them in full.
            let found = self.state.withLock { state in
                (state.requests[product + "/" + requestID] ?? []).compactMap { id -> String? in
                    let key = product + "/" + id
                    return state.sent[key]?.json(now: now, delay: self.deliveryDelay, brief: product == "sms") ?? state.messages[key]?.json
                }
            }
            guard !found.isEmpty else { return Self.notFound }
            return Self.json(
                200, #"{"requestId":"\#(requestID)","statusCode":"200","statusName":"success","messages":["# + found.joined(separator: ",") + "]}")
        case ("POST", 6):
            return self.acceptSend(product: product, body: body)
        default:
            return Self.json(405, #"{"error":{"errorCode":"405","message":"Method Not Allowed"}}"#)
        }
    }

    /// Accepts a send as SENS does: one message per recipient in `messages`, each `READY` at first (``SentMessage``).
    private func acceptSend(product: String, body: [UInt8]) -> Answer {
        guard let parsed = try? JSONValue.parse(body), case .object = parsed else {
            return Self.json(400, #"{"error":{"errorCode":"400","message":"Request body is not JSON"}}"#)
        }
        guard case .array(let items)? = parsed["messages"], !items.isEmpty, items.count <= 1000 else {
            return Self.json(400, #"{"error":{"errorCode":"400","message":"messages must hold 1 to 1000 recipients"}}"#)
        }
        var recipients: [(to: String, failover: Bool)] = []
        for item in items {
            guard case .string(let to)? = item["to"], !to.isEmpty, to.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                return Self.json(400, #"{"error":{"errorCode":"400","message":"each message needs a to of digits"}}"#)
            }
            var failover = false
            if case .bool(let asked)? = item["useSmsFailover"] { failover = asked }
            recipients.append((to, failover))
        }
        let now = ContinuousClock.now
        let requestID = self.state.withLock { state -> String in
            state.sendCount += 1
            let number = String(state.sendCount)
            let requestID = "RMOCK-" + product + "-" + number
            for (index, recipient) in recipients.enumerated() {
                let messageID = "mock-" + product + "-" + number + "-" + String(index + 1)
                state.sent[product + "/" + messageID] = SentMessage(
                    product: product, messageId: messageID, requestId: requestID, to: recipient.to, useSmsFailover: recipient.failover,
                    acceptedAt: now)
                state.requests[product + "/" + requestID, default: []].append(messageID)
            }
            return requestID
        }
        return Self.json(202, #"{"requestId":"\#(requestID)","requestTime":"2026-12-01T10:17:00.000","statusCode":"202","statusName":"success"}"#)
    }

    static var notFound: Answer { json(404, #"{"error":{"errorCode":"404","message":"Not Found"}}"#) }

    static func json(_ status: Int, _ text: String) -> Answer {
        .respond(status: status, contentType: "application/json; charset=utf-8", body: Array(text.utf8), extraHeaders: [])
    }

    static func queryValue(_ name: String, in query: Substring) -> String? {
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2, kv[0] == name, !kv[1].isEmpty { return String(kv[1]) }
        }
        return nil
    }
}

/// Collects one request at a time and writes the mock's answer.
final class MockHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let mock: SENSMock
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(mock: SENSMock) {
        self.mock = mock
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.removeAll(keepingCapacity: true)
        case .body(var buffer):
            self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let answer = self.mock.answer(method: head.method.rawValue, target: head.uri, headers: head.headers, body: self.body,
                                          version: head.version)
            // An HTTP/2 stream ends with its response; the connection stays (NIO counts only 1.1 as keep-alive by default).
            self.perform(answer, keepAlive: head.version.major >= 2 || head.isKeepAlive, context: context)
        }
    }

    private func perform(_ answer: SENSMock.Answer, keepAlive: Bool, context: ChannelHandlerContext) {
        switch answer {
        case .respond(let status, let contentType, let body, let extra):
            self.write(status: status, contentType: contentType, body: body, extra: extra, keepAlive: keepAlive, context: context)
        case .fault(let fault, let then):
            switch fault {
            case .status(let code, let retryAfter):
                let body = Array(#"{"error":{"errorCode":"\#(code)","message":"Injected fault"}}"#.utf8)
                let extra = retryAfter.map { [("Retry-After", String($0))] } ?? []
                self.write(status: code, contentType: "application/json", body: body, extra: extra, keepAlive: keepAlive, context: context)
            case .delay(let milliseconds):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(milliseconds))) {
                    let (handler, context) = loopBound.value
                    guard context.channel.isActive else { return }
                    handler.perform(then(), keepAlive: keepAlive, context: context)
                }
            case .reset:
                // SO_LINGER with a zero timeout turns close() into a TCP RST.
                if let socket = context.channel as? any SocketOptionProvider {
                    _ = socket.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                }
                context.close(promise: nil)
            case .close:
                context.close(promise: nil)
            case .truncate:
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: "1000")
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                let partial = ByteBuffer(string: #"{"statusCode":"200","statusName":"success","messages":[{"#)
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(partial)))).whenComplete { _ in
                    channel.close(promise: nil)
                }
            case .garbage:
                self.write(status: 200, contentType: "application/json", body: Array("<<garbage>> not json {".utf8), extra: [],
                           keepAlive: keepAlive, context: context)
            case .huge(let bytes):
                var body = Array(#"{"statusCode":"200","statusName":"success","messages":[],"padding":""#.utf8)
                body += Array(repeating: UInt8(ascii: "x"), count: max(0, bytes))
                body += Array(#""}"#.utf8)
                self.write(status: 200, contentType: "application/json", body: body, extra: [], keepAlive: keepAlive, context: context)
            case .wrongShape:
                self.write(status: 200, contentType: "application/json", body: Array(#"{"unexpected":[1,2,3],"statusCode":42}"#.utf8),
                           extra: [], keepAlive: keepAlive, context: context)
            case .html:
                self.write(status: 200, contentType: "text/html", body: Array("<html><body>Service Unavailable</body></html>".utf8),
                           extra: [], keepAlive: keepAlive, context: context)
            case .stall(let bytes):
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(2 * bytes))
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                let half = ByteBuffer(bytes: [UInt8](repeating: UInt8(ascii: " "), count: bytes))
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(half))), promise: nil)
            case .otherMessage, .byteOrderMark, .notUTF8:
                let (prefix, id, text): ([UInt8], String, [UInt8]) = switch fault {
                case .byteOrderMark: ([0xEF, 0xBB, 0xBF], "fault-bom", Array("ok".utf8))
                case .notUTF8: ([], "fault-notutf8", [0x6F, 0xFF, 0x6B])
                default: ([], "someone-elses-message", Array("ok".utf8))
                }
                let body = prefix + Array(#"{"statusCode":"200","statusName":"success","messages":[{"messageId":"\#(id)","requestId":"RSMA-fault","status":"COMPLETED","statusCode":"0","statusName":"success","content":""#.utf8)
                    + text + Array(#""}]}"#.utf8)
                self.write(status: 200, contentType: "application/json", body: body, extra: [], keepAlive: keepAlive, context: context)
            case .notHTTP:
                // Written below the HTTP encoder, straight to the socket.
                if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) {
                    let channel = context.channel
                    encoder.writeAndFlush(NIOAny(ByteBuffer(string: "SSH-2.0-OpenSSH_9.0 not http at all\r\n\r\n"))).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                } else {
                    context.close(promise: nil)
                }
            }
        }
    }

    private func write(status: Int, contentType: String?, body: [UInt8], extra: [(String, String)], keepAlive: Bool, context: ChannelHandlerContext) {
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status))
        if let contentType { head.headers.add(name: "Content-Type", value: contentType) }
        head.headers.add(name: "Content-Length", value: String(body.count))
        for (name, value) in extra { head.headers.add(name: name, value: value) }
        if !keepAlive { head.headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
