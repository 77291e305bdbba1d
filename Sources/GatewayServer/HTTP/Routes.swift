import SENSClient
import NIOCore
import NIOHTTP1
import UpstreamClient

/// Every route, in one place: a request's target is checked, its caller authenticated, then it is dispatched by
/// path and method. Runs on the connection's event loop.
struct Routes: Sendable {
    /// Every request's metrics and access-log line.
    let log: AccessLog
    /// The request-body bytes all connections may hold at once.
    let bodyBudget: BodyBudget
    let callers: CallerStore
    let passthrough: Passthrough
    let results: DeliveryLookup
    let requests: TrackedRequests
    let events: DeliveryEvents
    let upstream: UpstreamClient
    let breaker: CircuitBreaker

    /// The methods the passthrough forwards.
    static let passthroughMethods: [HTTPMethod] = [.GET, .POST, .PUT, .PATCH, .DELETE, .HEAD, .OPTIONS]

    func route(_ exchange: Exchange) -> Reply {
        if let rejection = RequestTarget.validate(exchange.target) {
            return .failure(GatewayError(.invalidRequest, rejection.rawValue))
        }
        do throws(GatewayError) {
            exchange.record.caller = try CallerAuth.authorize(exchange, store: self.callers)
            return try self.dispatch(exchange)
        } catch {
            return .failure(error)
        }
    }

    private func dispatch(_ exchange: Exchange) throws(GatewayError) -> Reply {
        let path = exchange.path
        let method = exchange.head.method
        if RequestTarget.isPassthrough(exchange.target) {
            guard Self.passthroughMethods.contains(method) else { throw Self.methodNotAllowed }
            return try self.passthrough.respond(to: exchange)
        }
        if path.hasBytePrefix("/v1/results") {
            // /v1/results:batch, /v1/results/{channel}, /v1/results/{channel}/{messageId}
            if path == "/v1/results:batch" {
                guard method == .POST else { throw Self.methodNotAllowed }
                return self.results.batch(exchange)
            }
            // The one or two segments after the prefix, found in place.
            let rest = path.dropFirst("/v1/results/".utf8.count)
            guard path.hasBytePrefix("/v1/results/"), !rest.isEmpty else { throw Self.notFound }
            guard method == .GET || method == .HEAD else { throw Self.methodNotAllowed }
            guard let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) else { return try self.results.list(exchange, channel: rest) }
            let messageId = rest[rest.utf8.index(after: slash)...]
            guard !messageId.utf8.contains(UInt8(ascii: "/")) else { throw Self.notFound }
            return try self.results.one(exchange, channel: rest[..<slash], messageId: messageId)
        }
        if path.hasBytePrefix("/v1/requests/") {
            let requestId = path.dropFirst("/v1/requests/".utf8.count)
            guard !requestId.isEmpty, !requestId.utf8.contains(UInt8(ascii: "/")) else { throw Self.notFound }
            guard method == .GET || method == .HEAD else { throw Self.methodNotAllowed }
            return try self.requests.one(exchange, requestId: requestId)
        }
        if path.hasBytePrefix("/v1/events") {
            // /v1/events, /v1/events/{id}:redeliver
            if path == "/v1/events" {
                guard method == .GET || method == .HEAD else { throw Self.methodNotAllowed }
                return try self.events.list(exchange)
            }
            let rest = path.dropFirst("/v1/events/".utf8.count)
            guard path.hasBytePrefix("/v1/events/"), rest.utf8.count > ":redeliver".utf8.count, rest.hasSuffix(":redeliver"),
                !rest.utf8.contains(UInt8(ascii: "/"))
            else { throw Self.notFound }
            guard method == .POST else { throw Self.methodNotAllowed }
            return try self.events.redeliver(exchange, eventId: rest.dropLast(":redeliver".count))
        }
        switch path {
        case "/healthz", "/readyz", "/metrics":
            guard method == .GET || method == .HEAD else { throw Self.methodNotAllowed }
            return .answer(self.local(path))
        default:
            throw Self.notFound
        }
    }

    /// Health, readiness and metrics, answered by the gateway itself.
    private func local(_ path: Substring) -> Answer {
        switch path {
        case "/readyz":
            guard self.upstream.isAccepting else { return .json(.serviceUnavailable, text: #"{"status":"shutting down"}"#) }
            guard !self.breaker.isRefusing() else {
                return .json(.serviceUnavailable, text: #"{"status":"upstream unreachable","circuit":"open"}"#)
            }
            // The store's trouble is reported, not made a reason to stop traffic: passthrough and lookups need no store.
            guard self.log.metrics.storeHealth.isAvailable || self.requests.store == nil else {
                return .json(.ok, text: #"{"status":"ready","store":"unavailable"}"#)
            }
            return .json(.ok, text: #"{"status":"ready"}"#)
        case "/metrics":
            let metrics = self.log.metrics
            metrics.recordCircuitState(self.breaker.phase.gaugeValue)
            metrics.recordLogLinesDropped(total: LogWriter.standardOutput.droppedLines)
            return Answer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: ByteBuffer(bytes: metrics.render()))
        default:
            return .json(.ok, text: #"{"status":"ok"}"#)
        }
    }

    private static var notFound: GatewayError { GatewayError(.notFound, "no such route") }
    private static var methodNotAllowed: GatewayError { GatewayError(.methodNotAllowed, "method not allowed on this route") }
}
