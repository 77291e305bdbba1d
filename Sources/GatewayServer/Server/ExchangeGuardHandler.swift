import SENSClient
import HTTPTypes
import NIOCore
import NIOHTTP1
import Synchronization

/// Per connection, in front of Hummingbird's connection loop: the parts of HTTP/1.1 that loop leaves open
/// (PRODUCT.md §4.6), decided by ``Exchanges`` and carried out here.
///
/// - A request Hummingbird must refuse is marked: its target is replaced with ``marker(for:)`` (a text no parsed
///   target can be), which ``RequestTargetMiddleware`` turns into `400 invalid_request`: a target that is not
///   origin-form (NIO's conversion to HTTP types would make `GET http://host/p` look like `/p`), `CONNECT`, or an
///   HTTP/1.1 request without exactly one `Host`.
/// - A request that ends the connection — HTTP/1.0 without keep-alive, `Connection: close`, `CONNECT` or an upgrade
///   (after which the parser no longer frames requests) — reaches the loop with `Connection: close`; its answer says
///   so and the connection is closed once that answer has been written.
/// - `Expect: 100-continue` gets its `100 Continue` when the route asks for the body (``SendContinue``, from
///   `Request.wholeBody`) and every earlier answer is written. An answer given before that (`401`, `413`, `400`)
///   says `Connection: close`, and the connection ends after it.
/// - The client timeout (slowloris) applies to the request being answered next: a pipelined request waiting behind a
///   slow answer is not cut off, nor the answer it waits behind. Connections beyond the cap are closed on accept.
///
/// Pipelined requests are answered in order by the loop itself (it reads the next request only after answering the
/// last), and a request the parser rejects is answered after every earlier one for the same reason.
final class ExchangeGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Sent down the pipeline (`triggerUserOutboundEvent`) by a route about to read a body: the client may be
    /// waiting for `100 Continue`.
    struct SendContinue: Sendable {}

    /// The target a refused request reaches the router with: a space cannot appear in a parsed request-target.
    static func marker(for rejection: RequestTarget.Rejection) -> String { "/ " + rejection.rawValue }

    /// The rejection a marked target stands for.
    static func rejection(marked target: String) -> RequestTarget.Rejection? {
        guard target.utf8.starts(with: "/ ".utf8) else { return nil }
        return RequestTarget.Rejection(rawValue: String(target.dropFirst(2)))
    }

    let limits: ConnectionLimits
    private let open: AtomicCount
    private let log: AccessLog
    /// Why the parser refused the connection's input, once it has: Hummingbird's loop then writes a bare `400`,
    /// which this handler turns into the contract's error (§4.3).
    private var parserError: (any Error)?
    /// The envelope to write before that answer's end.
    private var parserErrorBody: [UInt8]?
    private var parserErrorStart = ContinuousClock.now
    private var counted = false
    private var timer: Scheduled<Void>?
    private var exchanges: Exchanges

    init(limits: ConnectionLimits, open: AtomicCount, log: AccessLog) {
        self.limits = limits
        self.open = open
        self.log = log
        self.exchanges = Exchanges()
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
            let action = self.exchanges.receivedHead(Exchanges.Head(head))
            // Its body must arrive within the client timeout too, once it is the request being answered next.
            if action.armTimer {
                self.arm(context: context)
            } else {
                self.disarm()
            }
            if let rejection = action.rejection {
                head.uri = Self.marker(for: rejection)
                // NIO's conversion to HTTP types reads a CONNECT target as an authority; the marker is a path.
                if head.method == .CONNECT { head.method = .GET }
            }
            if action.closesConnection { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
        case .body:
            context.fireChannelRead(data)
        case .end:
            // Between requests the server's idle timeout applies.
            self.disarm()
            self.exchanges.receivedEnd()
            context.fireChannelRead(data)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            self.parserError = error
            self.parserErrorStart = .now
        }
        context.fireErrorCaught(error)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is SendContinue else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        if self.exchanges.bodyWanted() { self.sendContinue(context: context) }
        promise?.succeed()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            if let error = self.parserError, head.headers["x-request-id"].isEmpty {
                head = self.parserErrorAnswer(error)
            }
            // Looked at only when the answer has a Connection header at all (the router's answers have none).
            let saysClose =
                head.headers.contains(name: "connection") && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
            switch self.exchanges.writingFinalHead(saysClose: saysClose) {
            case .close: head.headers.replaceOrAdd(name: "connection", value: "close")
            case .keepAlive: head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            case .none: break
            }
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
        case .head, .body:
            context.write(data, promise: promise)
        case .end:
            if let body = self.parserErrorBody {
                self.parserErrorBody = nil
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            }
            switch self.exchanges.writingEnd() {
            case .none:
                context.write(data, promise: promise)
            case .nextRequest(let sendContinue):
                context.write(data, promise: promise)
                self.arm(context: context)
                if sendContinue { self.sendContinue(context: context) }
            case .close:
                // Once the answer is written — a close before would drop what is still queued — only the output is
                // shut: the client reads the answer to its end and closes, which closes the connection. A full close
                // now would reset it while the client is still sending (a body nobody will read, a 1 MB header), and
                // the answers with it. A client that never closes is closed after the client timeout.
                let written = context.eventLoop.makePromise(of: Void.self)
                if let promise { written.futureResult.cascade(to: promise) }
                let channel = context.channel
                let linger = TimeAmount.nanoseconds(self.limits.clientTimeout.nanoseconds)
                written.futureResult.whenComplete { _ in
                    channel.close(mode: .output, promise: nil)
                    channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
                }
                context.writeAndFlush(data, promise: written)
            }
        }
    }

    /// The contract's `400 invalid_request` for input the parser refused — envelope, request id, `Connection: close` —
    /// counted and logged like any other answer; its body is written before the answer's end.
    private func parserErrorAnswer(_ error: any Error) -> HTTPResponseHead {
        let record = RequestRecord()
        record.requestID = RequestIDMiddleware.generate()
        let reason: String
        switch error as? HTTPParserError {
        case .headerOverflow?: reason = "the request head is too large"
        case .invalidContentLength?, .unexpectedContentLength?: reason = "the request's Content-Length is invalid or given twice"
        default: reason = "the request could not be parsed as HTTP/1.1"
        }
        let (status, fields, body) = ErrorMiddleware.answer(for: GatewayError(.invalidRequest, reason), record: record)
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: Int(status.code)))
        for field in fields { head.headers.add(name: field.name.rawName, value: field.value) }
        head.headers.add(name: "X-Request-Id", value: record.requestID)
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        self.parserErrorBody = body
        self.log.finish(
            method: .init("UNPARSED") ?? .get, target: "", status: Int(status.code), bytesOut: body.count,
            elapsed: ContinuousClock.now - self.parserErrorStart, record: record)
        return head
    }

    private func sendContinue(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    private func disarm() {
        self.timer?.cancel()
        self.timer = nil
    }

    private func arm(context: ChannelHandlerContext) {
        self.timer?.cancel()
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: .nanoseconds(self.limits.clientTimeout.nanoseconds)) {
            channel.close(promise: nil)
        }
    }
}
