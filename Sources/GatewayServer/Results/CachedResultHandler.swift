import DeliveryResults
import HTTPTypes
import NIOCore
import NIOHTTPTypes

#if canImport(Glibc)
import Glibc
#endif

/// What a connection needs to answer a cached delivery result itself.
struct CachedResultAnswerer: Sendable {
    let lookup: DeliveryLookup
    let callers: CallerStore
    let log: AccessLog

    /// The answer to a `GET /v1/results/{channel}/{messageId}` whose result is in the cache, or `nil` for every
    /// other request — including any the router would refuse, so that every error still comes from one place, and any
    /// that asks to close the connection, which the router's connection loop handles.
    func answer(_ head: HTTPRequest) -> (body: [UInt8], record: RequestRecord)? {
        guard head.method == .get, let target = head.path, target.utf8.starts(with: Self.prefix.utf8),
            RequestTarget.validate(target) == nil, let parsed = Self.parse(target),
            !head.headerFields[values: .connection].contains(where: { $0.lowercased().contains("close") })
        else { return nil }
        guard let channel = DeliveryChannel(rawValue: parsed.channel),
            (try? DeliveryLookup.identifier(parsed.messageId, name: "messageId")) != nil,
            let serviceId = try? self.lookup.serviceId(given: parsed.serviceId, channel: channel)
        else { return nil }
        var caller: Caller? = nil
        if let tokens = self.callers.tokens {
            guard let presented = CallerAuthMiddleware.token(in: head.headerFields), let known = tokens.authenticate(presented),
                known.allows(channel: channel.rawValue)
            else { return nil }
            caller = known
        }
        guard let entry = self.lookup.cache.get(ResultCache.Key(channel: channel, serviceId: serviceId, messageId: parsed.messageId)) else {
            return nil
        }
        let record = RequestRecord()
        record.route = "/v1/results"
        record.caller = caller
        if let given = head.headerFields[RequestIDMiddleware.headerName], RequestIDMiddleware.isAcceptable(given) {
            record.requestID = given
            record.requestIDFromCaller = true
        } else {
            record.requestID = RequestIDMiddleware.generate()
        }
        self.lookup.metrics.recordCache(outcome: "hit")
        self.lookup.count(entry.result, record: record)
        return (entry.body(includeRaw: parsed.includeRaw), record)
    }

    static let prefix = "/v1/results/"

    /// `/v1/results/{channel}/{messageId}` with at most `serviceId=` and `include=` in the query, all plain (no
    /// escapes, no repeats); anything else is left to the router, which decodes queries fully.
    static func parse(_ target: String) -> (channel: String, messageId: String, serviceId: String?, includeRaw: Bool)? {
        let rest = target.utf8.dropFirst(Self.prefix.utf8.count)
        let pathEnd = rest.firstIndex(of: UInt8(ascii: "?")) ?? rest.endIndex
        let segments = rest[..<pathEnd].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard segments.count == 2 else { return nil }
        var serviceId: String? = nil
        var include: String? = nil
        if pathEnd != rest.endIndex {
            for pair in rest[rest.index(after: pathEnd)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
                guard let equals = pair.firstIndex(of: UInt8(ascii: "=")) else { return nil }
                let value = pair[pair.index(after: equals)...]
                guard value.allSatisfy({ DeliveryLookup.isIdentifierByte($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ",") }) else {
                    return nil
                }
                switch String(decoding: pair[..<equals], as: UTF8.self) {
                case "serviceId" where serviceId == nil: serviceId = String(decoding: value, as: UTF8.self)
                case "include" where include == nil: include = String(decoding: value, as: UTF8.self)
                default: return nil
                }
            }
        }
        let includeRaw = include?.split(separator: ",").contains("raw") ?? false
        return (String(decoding: segments[0], as: UTF8.self), String(decoding: segments[1], as: UTF8.self), serviceId, includeRaw)
    }
}

/// Answers cache hits for one delivery result on the connection's event loop, without entering the router.
///
/// A hit needs no upstream call, so the router's path — a Swift task hop each way, the middleware chain, request and
/// response objects — would be most of its cost. The handler sits just before Hummingbird's async channel and takes
/// a request only when it can answer it completely (same body, headers, metrics and access-log line as the route);
/// everything else, including every error, goes on to the router unchanged. Requests stay in order: while a response
/// from the router is outstanding, later requests follow it there.
final class CachedResultHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let answerer: CachedResultAnswerer
    /// Requests handed to the router whose response has not ended yet.
    private var routed = 0
    /// A hit whose request has not ended yet (a stray body is read and dropped, as the route does).
    private var held: (head: HTTPRequest, body: [UInt8], record: RequestRecord, start: ContinuousClock.Instant)?
    private var needsFlush = false
    private var date = HTTPDate()

    init(answerer: CachedResultAnswerer) {
        self.answerer = answerer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if self.routed == 0, let hit = self.answerer.answer(head) {
                self.held = (head, hit.body, hit.record, .now)
                return
            }
            self.routed += 1
        case .body:
            if self.held != nil { return }
        case .end:
            if let held = self.held {
                self.held = nil
                self.respond(context: context, held)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.routed -= 1 }
        context.write(data, promise: promise)
    }

    private func respond(context: ChannelHandlerContext, _ held: (head: HTTPRequest, body: [UInt8], record: RequestRecord, start: ContinuousClock.Instant)) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "application/json"
        response.headerFields[.contentLength] = String(held.body.count)
        response.headerFields[RequestIDMiddleware.headerName] = held.record.requestID
        response.headerFields[.date] = self.date.now()
        context.write(self.wrapOutboundOut(.head(response)), promise: nil)
        context.write(self.wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: held.body))), promise: nil)
        context.write(self.wrapOutboundOut(.end(nil)), promise: nil)
        self.needsFlush = true
        self.answerer.log.finish(
            method: held.head.method, target: held.head.path ?? "", status: 200, bytesOut: held.body.count,
            elapsed: ContinuousClock.now - held.start, record: held.record)
    }
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
