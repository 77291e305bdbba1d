import HTTPTypes
import Metrics
import NIOCore
import NIOHTTPTypes
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// The signed passthrough, taken on the connection's event loop (see ``DirectResponseHandler``).
struct DirectPassthrough: Sendable {
    let upstream: SignedUpstream
    let callers: CallerStore
    let maxBodyBytes: Int

    /// Methods taken here; `HEAD` and `OPTIONS` (rare, and answered without a body) stay with the router.
    static let methods: Set<HTTPRequest.Method> = [.get, .post, .put, .patch, .delete]

    /// The request's record when this path takes it: a valid passthrough target, an allowed caller, a connection
    /// that stays open. Anything else, including every request the router would refuse, is left to the router.
    func accept(_ head: HTTPRequest) -> RequestRecord? {
        guard Self.methods.contains(head.method), let target = head.path, RequestTarget.isPassthrough(target),
            RequestTarget.validate(target) == nil, !DirectResponseHandler.asksToClose(head)
        else { return nil }
        return RequestRecord(direct: head, route: RouteLabel.of(target), callers: self.callers)
    }
}

extension RequestRecord {
    /// The record of a request answered before the router, as the router's middleware would fill it in: the caller
    /// and the request id. `nil` when the caller is not let in (the router then gives the 401).
    convenience init?(direct head: HTTPRequest, route: String, callers: CallerStore) {
        let caller: Caller?
        do {
            caller = try CallerAuthMiddleware.authorize(head, store: callers)
        } catch {
            return nil
        }
        self.init()
        self.route = route
        self.caller = caller
        RequestIDMiddleware.assign(from: head.headerFields, to: self)
    }
}

/// Answers the hot routes on the connection's event loop, without entering the router: single-message result lookups
/// (cache hits at once) and the signed passthrough (the upstream call goes straight from this thread to the curl
/// thread and its completion straight back).
///
/// Through the router, each request would cross event loop → Swift task → curl thread → Swift task → event loop and
/// pass the middleware chain and request and response objects; here it crosses event loop → curl thread → event loop.
/// A request is taken only when it can be answered exactly as the router would (same status, headers, body, metrics
/// and access-log line; the same code builds them); everything else goes on to the router unchanged. The handler sits
/// just before Hummingbird's async channel, after its keep-alive and idle-timeout handler. Responses stay in request
/// order: while the router owes a response, later requests follow it there; while this handler owes one, later parts
/// wait here.
final class DirectResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Taken {
        /// A result lookup, answered at the request's end (a stray body is read and dropped, as the route does).
        case lookup(DirectResultLookup.Answer)
        /// A passthrough request whose body is being read.
        case passthrough(body: ByteBuffer, tooLarge: Bool)
        /// A call to SENS is out; the passthrough's can be cancelled if the caller goes away.
        case waiting(UpstreamCancellation?)
    }

    private struct Exchange {
        var head: HTTPRequest
        var record: RequestRecord
        var start: ContinuousClock.Instant
        var taken: Taken

        /// Counted in the in-flight gauge, as the router counts every request: all but cache hits, which are answered
        /// within one read.
        var countsInFlight: Bool {
            if case .lookup(.cached) = self.taken { return false }
            return true
        }
    }

    /// A reply ready to write: status, headers and body.
    private typealias Reply = Result<(status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer), GatewayError>

    private let results: DirectResultLookup
    private let passthrough: DirectPassthrough
    private let log: AccessLog
    /// Requests handed to the router whose response has not ended yet.
    private var routed = 0
    private var current: Exchange?
    /// Parts that arrived while a passthrough call was out, replayed in order when it is answered.
    private var queued: [HTTPRequestPart] = []
    private var queuedBytes = 0
    private var needsFlush = false
    private var date = HTTPDate()

    init(results: DirectResultLookup, passthrough: DirectPassthrough, log: AccessLog) {
        self.results = results
        self.passthrough = passthrough
        self.log = log
    }

    static func asksToClose(_ head: HTTPRequest) -> Bool {
        head.headerFields[values: .connection].contains { $0.lowercased().contains("close") }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.read(context: context, part: self.unwrapInboundIn(data))
    }

    private func read(context: ChannelHandlerContext, part: HTTPRequestPart) {
        if case .waiting? = self.current?.taken {
            // A client may pipeline, but not without bound while its call is out.
            if case .body(let chunk) = part { self.queuedBytes += chunk.readableBytes }
            self.queued.append(part)
            if self.queued.count > 64 || self.queuedBytes > self.passthrough.maxBodyBytes {
                context.close(promise: nil)
            }
            return
        }
        switch part {
        case .head(let head):
            if self.routed == 0 && self.current == nil {
                var exchange: Exchange? = nil
                if let taken = self.results.accept(head) {
                    exchange = Exchange(head: head, record: taken.record, start: .now, taken: .lookup(taken.answer))
                } else if let record = self.passthrough.accept(head) {
                    exchange = Exchange(head: head, record: record, start: .now, taken: .passthrough(body: ByteBuffer(), tooLarge: false))
                }
                if let exchange {
                    if exchange.countsInFlight { self.log.metrics.inFlight.increment() }
                    self.current = exchange
                    return
                }
            }
            self.routed += 1
        case .body(var chunk):
            if var exchange = self.current {
                if case .passthrough(var body, var tooLarge) = exchange.taken {
                    exchange.record.bytesIn += chunk.readableBytes
                    if tooLarge || body.readableBytes + chunk.readableBytes > self.passthrough.maxBodyBytes {
                        // Read to the end and dropped, then answered 413, as the router does.
                        tooLarge = true
                        body = ByteBuffer()
                    } else {
                        body.writeBuffer(&chunk)
                    }
                    exchange.taken = .passthrough(body: body, tooLarge: tooLarge)
                    self.current = exchange
                }
                return
            }
        case .end:
            if let exchange = self.current {
                switch exchange.taken {
                case .lookup(.cached(let body)):
                    self.current = nil
                    self.respond(context: context, exchange, status: .ok, fields: Self.json, body: ByteBuffer(bytes: body))
                case .lookup(.upstream(let lookup, let includeRaw)):
                    self.look(context: context, exchange, up: lookup, includeRaw: includeRaw)
                case .passthrough(let body, let tooLarge):
                    if tooLarge {
                        self.current = nil
                        exchange.record.bytesIn = 0  // the router counts no body it refused
                        self.fail(context: context, exchange, GatewayError(.payloadTooLarge, "request body is over the limit"))
                    } else {
                        self.send(context: context, exchange, body: body)
                    }
                case .waiting:
                    break
                }
                return
            }
        }
        context.fireChannelRead(self.wrapInboundOut(part))
    }

    private func send(context: ChannelHandlerContext, _ exchange: Exchange, body: ByteBuffer) {
        let cancellation = UpstreamCancellation()
        let upstream = self.passthrough.upstream
        let request = Passthrough.upstreamRequest(exchange.head, body: body, requestID: exchange.record.requestID)
        self.wait(context: context, exchange, cancellation: cancellation) { _, reply in
            upstream.send(request, route: exchange.record.route, record: exchange.record, cancellation: cancellation) { result in
                reply(result.flatMap { response in Reply { () throws(GatewayError) in try Passthrough.answer(response) } })
            }
        }
    }

    private func look(context: ChannelHandlerContext, _ exchange: Exchange, up lookup: DeliveryLookup.Lookup, includeRaw: Bool) {
        let results = self.results.lookup
        let record = exchange.record
        self.wait(context: context, exchange) { loop, reply in
            results.fetchMessage(lookup, requestID: record.requestID, record: record, hop: { work in loop.execute(work) }) { outcome in
                // Written here: on this event loop, or on another one when a lookup from another connection led.
                reply(outcome.map { entry in
                    results.count(entry.result, record: record)
                    return (.ok, Self.json, ByteBuffer(bytes: entry.body(includeRaw: includeRaw)))
                })
            }
        }
    }

    /// Marks the exchange as waiting and starts `call`, whose reply is answered on this event loop.
    private func wait(
        context: ChannelHandlerContext, _ exchange: Exchange, cancellation: UpstreamCancellation? = nil,
        for call: (_ loop: any EventLoop, _ reply: @escaping @Sendable (Reply) -> Void) -> Void
    ) {
        var exchange = exchange
        exchange.taken = .waiting(cancellation)
        self.current = exchange
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        call(loop) { reply in
            loop.execute {
                let (handler, context) = bound.value
                handler.answer(context: context, reply)
            }
        }
    }

    /// SENS answered (or could not be reached): reply, then take up what arrived meanwhile.
    private func answer(context: ChannelHandlerContext, _ reply: Reply) {
        guard let exchange = self.current, case .waiting = exchange.taken else { return }
        self.current = nil
        // Answered and logged even when the caller has gone meanwhile (the write then goes nowhere), as the router does.
        switch reply {
        case .success(let answer): self.respond(context: context, exchange, status: answer.status, fields: answer.fields, body: answer.body)
        case .failure(let error): self.fail(context: context, exchange, error)
        }
        self.flushIfNeeded(context: context)
        let queued = self.queued
        self.queued.removeAll()
        self.queuedBytes = 0
        for part in queued { self.read(context: context, part: part) }
        if !queued.isEmpty {
            // The router's async channel hands reads on at the end of a read burst; this replay is one.
            context.fireChannelReadComplete()
        }
        self.flushIfNeeded(context: context)
    }

    private func fail(context: ChannelHandlerContext, _ exchange: Exchange, _ error: GatewayError) {
        let (status, fields, body) = ErrorMiddleware.answer(for: error, record: exchange.record)
        self.respond(context: context, exchange, status: status, fields: fields, body: ByteBuffer(bytes: body))
    }

    private func respond(context: ChannelHandlerContext, _ exchange: Exchange, status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer) {
        var response = HTTPResponse(status: status, headerFields: fields)
        response.headerFields[.contentLength] = String(body.readableBytes)
        response.headerFields[RequestIDMiddleware.headerName] = exchange.record.requestID
        response.headerFields[.date] = self.date.now()
        context.write(self.wrapOutboundOut(.head(response)), promise: nil)
        if body.readableBytes > 0 { context.write(self.wrapOutboundOut(.body(body)), promise: nil) }
        context.write(self.wrapOutboundOut(.end(nil)), promise: nil)
        self.needsFlush = true
        if exchange.countsInFlight { self.log.metrics.inFlight.decrement() }
        self.log.finish(
            method: exchange.head.method, target: exchange.head.path ?? "", status: status.code, bytesOut: body.readableBytes,
            elapsed: ContinuousClock.now - exchange.start, record: exchange.record)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The caller is gone: stop the call to SENS rather than finish it for no one.
        if case .waiting(let cancellation?)? = self.current?.taken { cancellation.cancel() }
        if let exchange = self.current {
            self.current = nil
            if exchange.countsInFlight { self.log.metrics.inFlight.decrement() }
        }
        self.queued.removeAll()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.routed -= 1 }
        context.write(data, promise: promise)
    }

    private static let json: HTTPFields = [.contentType: "application/json"]
}

/// The `Date` header value (RFC 9110 IMF-fixdate), formatted at most once a second per connection.
struct HTTPDate {
    private var second = -1
    private var text = ""

    mutating func now() -> String {
        var seconds = time_t()
        time(&seconds)
        if Int(seconds) != self.second {
            self.second = Int(seconds)
            self.text = Self.format(seconds)
        }
        return self.text
    }

    static func format(_ seconds: time_t) -> String {
        var seconds = seconds
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
