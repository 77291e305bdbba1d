import CoreMetrics
import SENSClient
import NIOCore
import NIOHTTP1
import Synchronization

/// Serves HTTP/1.1 exchanges on one client connection, every route (PRODUCT.md §4.6). NIO's pipelining handler in
/// front hands over one request at a time, in order, with half-closes and parser errors in their place among them;
/// this handler routes each request (``Routes``), reads its body when the route asks, writes the answer, and decides
/// what the connection does next through the pure state machine ``Exchanges``.
///
/// Why not Hummingbird's connection loop (the previous design): it runs every connection in a Swift task and hands
/// each request and answer between that task and the event loop through async sequences; measured with
/// `scripts/bench.sh`, that hand-over cost more CPU than everything sensgate does per request (docs/performance.md).
/// Here a route runs on the event loop and answers at once or through a ``Responder`` — the one thread hop left is
/// from the upstream client's thread back to the connection's loop.
///
/// - A target that is not origin-form, `CONNECT`, and an HTTP/1.1 request without exactly one `Host` are `400`.
/// - HTTP/1.0 without keep-alive, `Connection: close`, `CONNECT` and upgrades are answered `Connection: close`, and
///   the connection is closed once the answer is written (output first: see ``close(after:context:)``).
/// - `Expect: 100-continue` gets its `100` only when the route reads the body; an answer before that ends the
///   connection, since the body may never come.
/// - A body that stops short (half-close, disconnect, parser error) is `400` and never reaches a route.
/// - The client timeout applies from connecting to the first head and from each head to its body's end; between
///   requests, the idle timeout. Connections beyond the cap are closed on accept.
final class HTTPExchangeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: Routes
    private let limits: ConnectionLimits
    private let open: AtomicCount
    private var counted = false
    private var exchanges = Exchanges()
    private var timer: Scheduled<Void>?
    /// When the connection is closed unless something happens first; `nil` while an answer is being worked out.
    private var deadline: NIODeadline?
    private var date = HTTPDate()
    private var context: ChannelHandlerContext?
    /// Inputs waiting for the connection to be writable again (see ``input(_:context:fromStash:)``).
    private var stash: [Input] = []
    private var paused = false
    /// The connection is closing (``close(after:context:)``, once): nothing more is read from it.
    private var closing = false

    // The current request (at most one: the pipelining handler holds the next back until this one is over).
    private var exchange: Exchange?
    private var start = ContinuousClock.now
    /// Counts requests, so that a late answer for an earlier one is recognised and dropped.
    private var generation: UInt64 = 0
    private var answered = false
    /// The body being read and what the route does with it.
    private var body: ByteBuffer?
    private var bodyLimit = 0
    private var bodyThen: ((ByteBuffer) throws(GatewayError) -> Reply)?
    /// Bytes of the body budget this request holds, and whether until it is answered.
    private var reserved = 0
    private var bodyHeldUntilAnswered = true

    init(routes: Routes, limits: ConnectionLimits, open: AtomicCount) {
        self.routes = routes
        self.limits = limits
        self.open = open
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let count = self.open.value.wrappingAdd(1, ordering: .relaxed).newValue
        self.counted = true
        if count > self.limits.maxConnections {
            context.close(promise: nil)
            return
        }
        // The first request's head must arrive within the client timeout.
        self.arm(self.limits.clientTimeout, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        if self.counted {
            self.open.value.wrappingSubtract(1, ordering: .relaxed)
            self.counted = false
        }
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body that was still coming will not: the request is logged as cut. An answer still owed by an upstream
        // call is logged when it arrives.
        if self.exchanges.isReadingBody { self.cut() }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.input(.part(self.unwrapInboundIn(data)), context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && self.paused {
            self.paused = false
            while !self.paused, !self.stash.isEmpty {
                self.input(self.stash.removeFirst(), context: context, fromStash: true)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// What reaches the handler from the client, in order.
    private enum Input {
        case part(HTTPServerRequestPart)
        case inputClosed
        case parserError(reason: String)
    }

    /// Takes the next input, unless a request would start while earlier answers wait to be written: then it and all
    /// that follow wait until the connection is writable again. NIO's pipelining handler hands over a buffered request
    /// as soon as an answer is queued, and a client that pipelines and never reads would otherwise have every answer
    /// queued in memory (socket reads stop too: `BackPressureHandler`). At most one socket read's worth of requests
    /// waits here.
    private func input(_ input: Input, context: ChannelHandlerContext, fromStash: Bool = false) {
        let startsRequest: Bool
        switch input {
        case .part(.head): startsRequest = true
        default: startsRequest = false
        }
        if (self.paused && !fromStash) || (startsRequest && !context.channel.isWritable) {
            self.paused = true
            if fromStash { self.stash.insert(input, at: 0) } else { self.stash.append(input) }
            return
        }
        switch input {
        case .part(let part): self.accept(part, context: context)
        case .inputClosed: self.interrupted(self.exchanges.inputClosed(), reason: nil, context: context)
        case .parserError(let reason): self.interrupted(self.exchanges.parserFailed(), reason: reason, context: context)
        }
    }

    private func accept(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        // A request pipelined behind the last one the connection answers is never acted on (nor sent upstream).
        guard !self.closing else { return }
        switch part {
        case .head(let head):
            self.received(head, context: context)
        case .body(var buffer):
            // Answered early: the rest of the body is discarded.
            guard self.bodyThen != nil, var body = self.body else { return }
            self.body = nil  // held by one reference while it grows
            if body.readableBytes + buffer.readableBytes > self.bodyLimit {
                self.bodyThen = nil
                self.respond(.failure(Self.tooLarge))
                return
            }
            body.writeBuffer(&buffer)
            self.body = body
        case .end:
            self.disarm()
            let then = self.bodyThen
            let body = self.body
            self.bodyThen = nil
            self.body = nil
            let next = self.exchanges.receivedEnd()
            if let then, let body {
                let reply: Reply
                do {
                    reply = try then(body)
                } catch {
                    reply = .failure(error)
                }
                if !self.bodyHeldUntilAnswered { self.releaseBudget() }
                self.run(reply, context: context)
            }
            self.carryOut(next, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.input(.inputClosed, context: context)
        } else if event is Quiesce {
            let interruption = self.exchanges.quiesce()
            // Idle between requests with nothing left to write: closed at once, as nginx does. A pooled keep-alive
            // connection is not read by its client until it is used, so a half-close would wait out the client timeout.
            let queued = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if interruption == .close, self.exchanges.isBetweenRequests, queued == 0, !self.closing {
                self.closing = true
                context.close(promise: nil)
                return
            }
            self.interrupted(interruption, reason: nil, context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Graceful shutdown, as the exchange handler hears of it: finish the current exchange (its answer says
    /// `Connection: close`), then close once everything queued is written.
    struct Quiesce: Sendable {}

    /// Placed before the HTTP codec: turns NIO's `ChannelShouldQuiesceEvent` into ``Quiesce``, which NIO's pipelining
    /// handler passes on (it would act on the former itself, closing at once).
    final class QuiesceForwarder: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            context.fireUserInboundEventTriggered(event is ChannelShouldQuiesceEvent ? Quiesce() : event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError else {
            // A reset or another I/O failure: nothing more can be read or written.
            context.close(promise: nil)
            return
        }
        let reason: String
        switch error {
        case .headerOverflow: reason = "the request head is too large"
        case .invalidContentLength, .unexpectedContentLength: reason = "the request's Content-Length is invalid or given twice"
        default: reason = "the request could not be parsed as HTTP/1.1"
        }
        self.input(.parserError(reason: reason), context: context)
    }

    // MARK: Requests

    private func received(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let action = self.exchanges.receivedHead(Exchanges.Head(head))
        // Its body must arrive within the client timeout too.
        self.arm(self.limits.clientTimeout, context: context)
        let exchange = Exchange(head: head, record: RequestRecord())
        self.begin(exchange)
        if let rejection = action.rejection {
            self.respond(.failure(GatewayError(.invalidRequest, rejection.rawValue)))
        } else {
            self.run(self.routes.route(exchange), context: context)
        }
    }

    private func begin(_ exchange: Exchange) {
        self.generation &+= 1
        self.answered = false
        self.start = .now
        RequestID.assign(from: exchange.head.headers, to: exchange.record)
        exchange.record.route = RouteLabel.of(exchange.path)
        self.routes.log.metrics.inFlight.increment()
        self.exchange = exchange
    }

    private func run(_ reply: Reply, context: ChannelHandlerContext) {
        switch reply {
        case .answer(let answer):
            self.respond(.success(answer))
        case .failure(let error):
            self.respond(.failure(error))
        case .readBody(let limit, let heldUntilAnswered, let then):
            guard let exchange = self.exchange else { return }
            let headers = exchange.head.headers
            let announced = headers.first(name: "content-length").flatMap { Int($0) }
            if let announced, announced > limit {
                self.respond(.failure(Self.tooLarge))
                return
            }
            // A chunked body may grow to the limit; a request with neither header has none.
            let reserve = announced ?? (headers.contains(name: "transfer-encoding") ? limit : 0)
            guard self.routes.bodyBudget.reserve(reserve) else {
                self.respond(.failure(GatewayError(.overloaded, "the gateway holds as many request bodies as it may; try again shortly", retryAfterSeconds: 1)))
                return
            }
            self.reserved = reserve
            self.body = context.channel.allocator.buffer(capacity: min(announced ?? 0, limit))
            self.bodyLimit = limit
            self.bodyHeldUntilAnswered = heldUntilAnswered
            self.bodyThen = then
            if self.exchanges.bodyWanted() {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
        case .later(let start):
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let generation = self.generation
            start(Responder(eventLoop: context.eventLoop) { result in handler.value.deliver(result, generation: generation) })
        }
    }

    private func releaseBudget() {
        guard self.reserved > 0 else { return }
        self.routes.bodyBudget.release(self.reserved)
        self.reserved = 0
    }

    private func deliver(_ result: Result<Answer, GatewayError>, generation: UInt64) {
        guard generation == self.generation else { return }
        self.respond(result)
    }

    /// Writes the current request's answer (once), logs and counts it, and frees what the request held.
    ///
    /// Every state change comes before the first write: writing the answer's end lets NIO's pipelining handler hand
    /// over the next request at once, re-entering this handler.
    private func respond(_ result: Result<Answer, GatewayError>) {
        guard let exchange = self.exchange, !self.answered else { return }
        self.answered = true
        let record = exchange.record
        let answer: Answer
        switch result {
        case .success(let success): answer = success
        case .failure(let error): answer = error.answer(record: record)
        }
        self.releaseBudget()
        self.routes.log.metrics.inFlight.decrement()
        let withoutBody = exchange.head.method == .HEAD || exchange.head.method == .CONNECT
        self.routes.log.finish(
            method: exchange.method, target: exchange.target, status: Int(answer.status.code),
            bytesOut: withoutBody ? 0 : answer.body.readableBytes, elapsed: ContinuousClock.now - self.start, record: record)
        guard let context = self.context else { return }
        let connection = self.exchanges.writingAnswer()
        let next = self.exchanges.answerDone()
        let active = context.channel.isActive
        if next == .idle { self.idle(context: context) }
        // Closing is decided (and nothing more read) before the write, which may hand over the next request.
        let written = next == .close && active ? context.eventLoop.makePromise(of: Void.self) : nil
        if next == .close { self.close(after: written?.futureResult, context: context) }
        if active {
            self.write(answer, record: record, connection: connection, withoutBody: withoutBody, promise: written, context: context)
        }
    }

    /// - Parameter promise: Completed once the answer is written; only for an answer that ends the connection (a promise
    ///   per answer costs more than anything else on the write).
    private func write(
        _ answer: Answer, record: RequestRecord, connection: Exchanges.ConnectionHeader, withoutBody: Bool,
        promise: EventLoopPromise<Void>?, context: ChannelHandlerContext
    ) {
        var head = HTTPResponseHead(version: .http1_1, status: answer.status)
        head.headers.reserveCapacity(7)
        if let contentType = answer.contentType { head.headers.add(name: "Content-Type", value: contentType) }
        if let retryAfter = answer.retryAfterSeconds { head.headers.add(name: "Retry-After", value: String(retryAfter)) }
        head.headers.add(name: "X-Request-Id", value: record.requestID)
        for (name, value) in answer.headers { head.headers.add(name: name, value: value) }
        head.headers.add(name: "Date", value: self.date.now())
        let status = answer.status.code
        // No body and no length for the statuses that have none (routes never answer 1xx: the passthrough refuses
        // them). A HEAD answer says how long the body would be when that is known; SENS's answer to a HEAD comes
        // without a body, so its length is not.
        let bodyless = status == 204 || status == 304
        if !bodyless && !(withoutBody && answer.body.readableBytes == 0) {
            head.headers.add(name: "Content-Length", value: String(answer.body.readableBytes))
        }
        switch connection {
        case .close: head.headers.add(name: "Connection", value: "close")
        case .keepAlive: head.headers.add(name: "Connection", value: "keep-alive")
        case .none: break
        }
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        // A HEAD request's answer says how long the body would be, without it. NIO's encoder frames an answer to
        // CONNECT without a body whatever its status (the refusal is framed by the close that follows it).
        if !bodyless && answer.body.readableBytes > 0 && !withoutBody {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: promise)
    }

    /// The exchange is over; the connection waits for the next request — for the idle timeout, or only the client
    /// timeout once connections fill most of `max-connections`, so that idle keep-alive connections cannot hold every
    /// slot for long.
    private func idle(context: ChannelHandlerContext) {
        self.exchange = nil
        let crowded = self.open.value.load(ordering: .relaxed) * 5 >= self.limits.maxConnections * 4
        self.arm(crowded ? min(self.limits.clientTimeout, self.limits.idleTimeout) : self.limits.idleTimeout, context: context)
    }

    private func carryOut(_ next: Exchanges.Next, context: ChannelHandlerContext) {
        switch next {
        case .none:
            break
        case .idle:
            self.idle(context: context)
        case .close:
            self.close(after: nil, context: context)
        }
    }

    /// The client half-closed, or the parser refused what followed.
    private func interrupted(_ interruption: Exchanges.Interruption, reason: String?, context: ChannelHandlerContext) {
        switch interruption {
        case .none:
            break
        case .close:
            self.close(after: nil, context: context)
        case .cutRequest:
            self.cut()
        case .refuseInput:
            // Input that is not a request: the contract's 400 (envelope, request id, log line), then the end.
            self.exchanges.refusingInput()
            self.begin(Exchange(head: HTTPRequestHead(version: .http1_1, method: .RAW(value: "UNPARSED"), uri: ""), record: RequestRecord()))
            self.respond(.failure(GatewayError(.invalidRequest, reason ?? "the request could not be parsed as HTTP/1.1")))
        }
    }

    /// The body stopped short: `400`, never forwarded, and the connection ends after it.
    private func cut() {
        self.bodyThen = nil
        self.body = nil
        self.exchanges.cutRequest()
        self.respond(.failure(GatewayError(.invalidRequest, "the request body did not arrive whole")))
    }

    /// Closes once the last answer is written — a close before would drop what is still queued. Only the output is
    /// shut: the client reads the answer to its end and closes, which closes the connection. A full close now would
    /// reset the connection while the client is still sending (a body nobody will read, a 1 MB header), and the answer
    /// with it. A client that does not close (or does not read) within the client timeout is closed by the
    /// connection's timer.
    /// - Parameter written: The last answer's write, when it was written knowing the connection ends after it; else
    ///   the close waits until nothing is left unwritten.
    private func close(after written: EventLoopFuture<Void>?, context: ChannelHandlerContext) {
        guard !self.closing else { return }
        self.closing = true
        self.arm(self.limits.clientTimeout, context: context)
        let channel = context.channel
        if let written {
            written.whenComplete { _ in channel.close(mode: .output, promise: nil) }
        } else {
            Self.closeOutput(whenWritten: channel)
        }
    }

    /// Closes the output once no answer bytes wait to be written (a client that half-closed would otherwise lose the
    /// rest: with its input closed, a close of the output is a full close, which drops what is queued). Stops when
    /// the connection is closed (at the latest by its timer).
    private static func closeOutput(whenWritten channel: any Channel) {
        guard channel.isActive else { return }
        let queued = (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        guard queued > 0 else { return channel.close(mode: .output, promise: nil) }
        channel.eventLoop.scheduleTask(in: .milliseconds(5)) { Self.closeOutput(whenWritten: channel) }
    }

    /// No timeout until the next ``arm(_:context:)`` (an answer being worked out is bounded by its upstream deadline).
    private func disarm() {
        // A connection being closed keeps its deadline: the client has that long to read the rest and close.
        guard !self.closing else { return }
        self.deadline = nil
    }

    /// The connection is closed unless the next step happens within `timeout`. One timer per connection, moved
    /// lazily: re-arming per request only stores a deadline (scheduling and cancelling a timer per request cost more
    /// than routing it).
    private func arm(_ timeout: Duration, context: ChannelHandlerContext) {
        let deadline = NIODeadline.now() + .nanoseconds(timeout.nanoseconds)
        self.deadline = deadline
        if self.timer == nil { self.schedule(at: deadline, context: context) }
    }

    /// The timer fires at the deadline or after the shorter of the two timeouts, whichever is first: so a deadline set
    /// later, which is never earlier than that, is never missed.
    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let shortest = min(self.limits.clientTimeout, self.limits.idleTimeout)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleTask(deadline: min(deadline, .now() + .nanoseconds(shortest.nanoseconds))) {
            handler.value.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        guard let deadline = self.deadline, let context = self.context else { return }
        if deadline <= .now() {
            context.close(promise: nil)
        } else {
            self.schedule(at: deadline, context: context)
        }
    }

    private static var tooLarge: GatewayError { GatewayError(.payloadTooLarge, "request body is over the limit") }
}
