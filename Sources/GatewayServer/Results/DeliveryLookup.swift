import SENSClient
import DeliveryResults
import JSON
import NIOCore
import NIOHTTP1
import Prometheus
import Store
import UpstreamClient

/// The unified delivery-result routes of PRODUCT.md §4.2: look results up in SENS, normalize, classify.
struct DeliveryLookup: Sendable {
    /// Most lookups one batch may hold.
    static let maxBatch = 100

    let upstream: SignedUpstream
    let configuration: GatewayConfiguration
    let normalizer: Normalizer
    let metrics: GatewayMetrics
    let cache: ResultCache
    /// Ends `?wait=` early on graceful shutdown.
    let waits: Completions
    let coalescer = Coalescer<ResultCache.Key, Result<ResultCache.Entry, GatewayError>>()

    /// What to look up: one message, or every message of one request.
    struct Lookup: Sendable {
        enum Key: Sendable {
            case message(String)
            case request(String)
        }

        var channel: DeliveryChannel
        var key: Key
        var serviceId: String

        /// The SENS request-target (every part was validated to characters that need no escaping).
        var target: String {
            switch self.key {
            case .message(let id): "\(self.channel.apiPrefix)/services/\(self.serviceId)/messages/\(id)"
            case .request(let id): "\(self.channel.apiPrefix)/services/\(self.serviceId)/messages?requestId=\(id)"
            }
        }

        /// What the lookup does at SENS, for the caller policy.
        var operation: Operation {
            Operation(channel: self.channel.rawValue, serviceId: self.serviceId, method: "GET", target: self.target)
        }

        /// Where a single message's result is cached; `nil` for a whole request's, which is never cached.
        var cacheKey: ResultCache.Key? {
            guard case .message(let id) = self.key else { return nil }
            return ResultCache.Key(channel: self.channel, serviceId: self.serviceId, messageId: id)
        }
    }

    // MARK: Routes

    /// `GET /v1/results/{channel}/{messageId}[?serviceId=…][&include=raw][&wait=SECONDS]`
    func one(_ exchange: Exchange, channel: Substring, messageId: Substring) throws(GatewayError) -> Reply {
        let channel = try Self.channel(String(channel))
        let messageId = try Self.identifier(String(messageId), name: "messageId")
        let lookup = Lookup(channel: channel, key: .message(messageId), serviceId: try self.serviceId(exchange, channel: channel))
        let record = exchange.record
        try record.caller?.authorize(lookup.operation)
        let includeRaw = Self.includeRaw(exchange)
        let wait = try exchange.wait()
        // A cached result is answered at once, on the event loop.
        if let key = lookup.cacheKey, let hit = self.cache.get(key) {
            self.metrics.recordCache(outcome: "hit")
            return .answer(self.answer(hit, includeRaw: includeRaw, record: record))
        }
        if wait > .zero {
            return .later { responder in self.waitForFinal(lookup, wait: wait, includeRaw: includeRaw, record: record, responder: responder) }
        }
        return .later { responder in
            self.message(lookup, requestID: record.requestID, record: record, on: responder.eventLoop) { outcome in
                responder.onLoop { responder.answer(outcome.map { self.answer($0, includeRaw: includeRaw, record: record) }) }
            }
        }
    }

    /// One message's answer: its JSON, counted.
    private func answer(_ entry: ResultCache.Entry, includeRaw: Bool, record: RequestRecord) -> Answer {
        self.count(entry, record: record)
        return Answer(status: .ok, contentType: "application/json", body: entry.body(includeRaw: includeRaw))
    }

    /// `?wait=`: looks again until the result is no longer pending or the wait ends. Every waiter looks on the same
    /// whole-second ticks, so concurrent waiters on one message join one upstream call per tick (the coalescer).
    private func waitForFinal(_ lookup: Lookup, wait: Duration, includeRaw: Bool, record: RequestRecord, responder: Responder) {
        let deadline = ContinuousClock.now + wait
        let key = "message:" + lookup.target
        Task {
            while true {
                let outcome = await self.message(lookup, requestID: record.requestID, record: record, on: responder.eventLoop)
                let left = deadline - .now
                if case .success(let entry) = outcome, entry.result.status == .pending || entry.result.resultClass == .pending,
                    left > .zero, !self.waits.isStopped
                {
                    let untilTick = Duration.milliseconds(1000 - Int64(StoreTime.now % 1000))
                    await self.waits.wait(for: key, timeout: min(left, untilTick))
                    continue
                }
                return responder.onLoop { responder.answer(outcome.map { self.answer($0, includeRaw: includeRaw, record: record) }) }
            }
        }
    }

    /// `GET /v1/results/{channel}?requestId=…[&serviceId=…][&include=raw]`
    func list(_ exchange: Exchange, channel: Substring) throws(GatewayError) -> Reply {
        let channel = try Self.channel(String(channel))
        guard let requestId = exchange.queryValue("requestId") else {
            throw GatewayError(.invalidRequest, "requestId is required: GET /v1/results/{channel}/{messageId} or ?requestId=…")
        }
        let lookup = Lookup(
            channel: channel, key: .request(try Self.identifier(requestId, name: "requestId")),
            serviceId: try self.serviceId(exchange, channel: channel))
        let record = exchange.record
        try record.caller?.authorize(lookup.operation)
        let includeRaw = Self.includeRaw(exchange)
        return .later { responder in
            self.fetch(lookup, requestID: record.requestID, record: record, on: responder.eventLoop) { fetched in
                responder.answer(fetched.map { results, raw in self.listAnswer(results, raw: includeRaw ? raw : nil, record: record) })
            }
        }
    }

    private func listAnswer(_ results: [DeliveryResult], raw: [UInt8]?, record: RequestRecord) -> Answer {
        var json = JSONWriter(capacity: 1024 * max(1, results.count) + (raw?.count ?? 0))
        json.beginObject()
        json.key("results")
        json.beginArray()
        var best: CodeClass? = nil
        for result in results {
            self.count(result, record: nil)
            best = max(best ?? result.resultClass, result.resultClass)
            result.write(into: &json)
        }
        json.endArray()
        if let raw {
            json.key("raw")
            json.raw(raw)
        }
        json.endObject()
        record.resultClass = best?.rawValue
        return .json(.ok, json.bytes)
    }

    /// `POST /v1/results:batch` with `{"lookups":[{"channel","messageId","serviceId"?}]}`: every lookup at once, answered
    /// in order, each a result or an error.
    func batch(_ exchange: Exchange) -> Reply {
        // The body is held only while it is parsed.
        .readBody(limit: self.configuration.maxBodyBytes, heldUntilAnswered: false) { body throws(GatewayError) -> Reply in
            let record = exchange.record
            record.bytesIn = body.readableBytes
            let parsed: JSONValue
            do {
                parsed = try JSONValue.parse(body.readableBytesView)
            } catch {
                throw GatewayError(.invalidRequest, "the body is not JSON: \(error)")
            }
            guard case .array(let items)? = parsed["lookups"] else {
                throw GatewayError(.invalidRequest, #"the body must be {"lookups":[{"channel":…,"messageId":…,"serviceId":…}]}"#)
            }
            guard items.count <= Self.maxBatch else {
                throw GatewayError(.invalidRequest, "a batch holds at most \(Self.maxBatch) lookups, not \(items.count)")
            }
            let caller = record.caller
            let lookups = items.enumerated().map { index, item -> Result<Lookup, GatewayError> in
                // Each item is decided by the caller policy on its own: an error item where the caller may not look.
                self.batchItem(item, index: index).flatMap { lookup in
                    do throws(GatewayError) {
                        try caller?.authorize(lookup.operation)
                        return .success(lookup)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            let includeRaw = Self.includeRaw(exchange)
            return .later { responder in self.batchLookups(lookups, includeRaw: includeRaw, requestID: record.requestID, responder: responder) }
        }
    }

    /// Runs a batch's lookups at once and answers when the last is in, in the batch's order.
    private func batchLookups(_ lookups: [Result<Lookup, GatewayError>], includeRaw: Bool, requestID: String, responder: Responder) {
        let outcomes = NIOLoopBoundBox(
            [Result<ResultCache.Entry, GatewayError>?](repeating: nil, count: lookups.count), eventLoop: responder.eventLoop)
        let remaining = NIOLoopBoundBox(lookups.count, eventLoop: responder.eventLoop)
        let finish: @Sendable () -> Void = {
            var json = JSONWriter(capacity: 1024 * max(1, outcomes.value.count))
            json.beginObject()
            json.key("results")
            json.beginArray()
            for outcome in outcomes.value {
                switch outcome {
                case .success(let entry)?:
                    self.count(entry, record: nil)
                    json.raw(entry.body(includeRaw: includeRaw).readableBytesView)
                case .failure(let error)?:
                    error.write(into: &json, requestID: requestID)
                case nil:
                    GatewayError(.internalError, "lookup did not finish").write(into: &json, requestID: requestID)
                }
            }
            json.endArray()
            json.endObject()
            responder.answer(.success(.json(.ok, json.bytes)))
        }
        guard !lookups.isEmpty else { return finish() }
        for (index, lookup) in lookups.enumerated() {
            let done: @Sendable (Result<ResultCache.Entry, GatewayError>) -> Void = { outcome in
                responder.onLoop {
                    outcomes.value[index] = outcome
                    remaining.value -= 1
                    if remaining.value == 0 { finish() }
                }
            }
            switch lookup {
            case .failure(let error):
                done(.failure(error))
            case .success(let lookup):
                // Each lookup notes its own upstream status; the request's record is not shared between calls.
                self.message(lookup, requestID: requestID, record: RequestRecord(), on: responder.eventLoop, completion: done)
            }
        }
    }

    // MARK: Upstream

    /// One message's result: from the cache, from a lookup already in flight for the same message, or from SENS
    /// (then cached if final). Only a result for the message asked for is returned or cached.
    /// - Parameters:
    ///   - eventLoop: Where SENS's answer is normalized (never on the upstream client's thread).
    ///   - completion: Runs once, on any thread.
    ///   - route: The route label of its upstream call (the tracker's polls are `tracker`).
    func message(
        _ lookup: Lookup, requestID: String, record: RequestRecord, on eventLoop: any EventLoop, route: String = "/v1/results",
        completion: @escaping @Sendable (Result<ResultCache.Entry, GatewayError>) -> Void
    ) {
        guard let key = lookup.cacheKey, case .message(let messageId) = lookup.key else {
            return completion(.failure(GatewayError(.internalError, "not a message lookup")))
        }
        if let hit = self.cache.get(key) {
            self.metrics.recordCache(outcome: "hit")
            return completion(.success(hit))
        }
        guard self.coalescer.join(key, waiter: completion) else {
            self.metrics.recordCache(outcome: "coalesced")
            return
        }
        self.metrics.recordCache(outcome: "miss")
        self.fetch(lookup, requestID: requestID, record: record, on: eventLoop, route: route) { fetched in
            let outcome = fetched.flatMap { results, raw -> Result<ResultCache.Entry, GatewayError> in
                guard let result = results.first(where: { $0.messageId == messageId }) else {
                    return .failure(
                        results.isEmpty
                            ? GatewayError(.notFound, "SENS returned no such message", upstreamStatus: record.upstreamStatus)
                            : GatewayError(.upstreamMalformed, "SENS answered with another message than the one asked for", upstreamStatus: 200))
                }
                var json = JSONWriter(capacity: 1024)
                result.write(into: &json)
                let entry = ResultCache.Entry(result: result, raw: raw, json: json.bytes, series: self.series(of: result))
                self.cache.put(key, entry)
                return .success(entry)
            }
            self.coalescer.finish(key, with: outcome)
        }
    }

    /// ``message(_:requestID:record:on:completion:)`` for a caller in a task (`sensgate lookup`).
    func message(
        _ lookup: Lookup, requestID: String, record: RequestRecord, on eventLoop: any EventLoop, route: String = "/v1/results"
    ) async -> Result<ResultCache.Entry, GatewayError> {
        await withCheckedContinuation { continuation in
            self.message(lookup, requestID: requestID, record: record, on: eventLoop, route: route) { continuation.resume(returning: $0) }
        }
    }

    /// Looks results up in SENS and normalizes them on `eventLoop`, never on the upstream client's thread.
    /// - Parameter completion: Runs once, on `eventLoop`, with the results and SENS's body (for `include=raw`).
    func fetch(
        _ lookup: Lookup, requestID: String, record: RequestRecord, on eventLoop: any EventLoop, route: String = "/v1/results",
        completion: @escaping @Sendable (Result<([DeliveryResult], [UInt8]), GatewayError>) -> Void
    ) {
        let request = UpstreamRequest(method: "GET", target: lookup.target, headers: [("accept", "application/json"), ("x-request-id", requestID)])
        // Not cancelled with one caller: callers of other connections may share this lookup.
        self.upstream.send(request, route: route, record: record, cancellation: nil) { sent in
            eventLoop.execute {
                completion(sent.mapError { GatewayError($0, method: "GET") }.flatMap { self.normalize($0, lookup: lookup) })
            }
        }
    }

    /// SENS's answer as delivery results, or the error it amounts to.
    func normalize(_ response: UpstreamResponse, lookup: Lookup) -> Result<([DeliveryResult], [UInt8]), GatewayError> {
        guard response.status == 200 else {
            return .failure(GatewayError.upstreamStatus(response.status, retryAfterSeconds: response.retryAfterSeconds))
        }
        if let contentType = response.contentType, !contentType.lowercased().contains("json") {
            return .failure(GatewayError(.upstreamMalformed, "SENS answered with \(Self.printable(contentType)), not JSON", upstreamStatus: 200))
        }
        var body = Array(response.body.readableBytesView)
        // A UTF-8 byte-order mark is dropped (the body is embedded as JSON under `raw`); anything not UTF-8 is refused.
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body.removeFirst(3) }
        guard String(validating: body, as: UTF8.self) != nil else {
            return .failure(GatewayError(.upstreamMalformed, "SENS's answer is not UTF-8", upstreamStatus: 200))
        }
        do {
            return .success((try self.normalizer.normalize(channel: lookup.channel, serviceId: lookup.serviceId, body: body), body))
        } catch {
            return .failure(
                GatewayError(.upstreamMalformed, "SENS's answer is not the documented \(lookup.channel.rawValue) result: \(error)", upstreamStatus: 200))
        }
    }

    /// ``fetch(_:requestID:record:on:route:completion:)`` for a caller in a task (the tracker).
    func fetch(
        _ lookup: Lookup, requestID: String, on eventLoop: any EventLoop, route: String
    ) async -> Result<([DeliveryResult], [UInt8]), GatewayError> {
        await withCheckedContinuation { continuation in
            self.fetch(lookup, requestID: requestID, record: RequestRecord(), on: eventLoop, route: route) { continuation.resume(returning: $0) }
        }
    }

    // MARK: Input

    func batchItem(_ item: JSONValue, index: Int) -> Result<Lookup, GatewayError> {
        guard case .object = item else { return .failure(GatewayError(.invalidRequest, "lookups[\(index)] is not an object")) }
        func text(_ key: String) -> String? {
            if case .string(let value)? = item[key] { return value }
            return nil
        }
        do throws(GatewayError) {
            let channel = try Self.channel(text("channel"))
            let messageId = try Self.identifier(text("messageId"), name: "lookups[\(index)].messageId")
            let serviceId = try self.serviceId(given: text("serviceId"), channel: channel)
            return .success(Lookup(channel: channel, key: .message(messageId), serviceId: serviceId))
        } catch {
            return .failure(error)
        }
    }

    static func channel(_ text: String?) throws(GatewayError) -> DeliveryChannel {
        guard let text, let channel = DeliveryChannel(rawValue: text) else {
            throw GatewayError(.invalidRequest, "channel must be sms, brandmessage or alimtalk")
        }
        return channel
    }

    /// Message and request ids: 1–128 of `A–Z a–z 0–9 - _ . ~ *` (SENS's ids are UUIDs and `R…-…` strings; its
    /// documentation masks them with `*`).
    static func identifier(_ text: String?, name: String) throws(GatewayError) -> String {
        guard let text, !text.isEmpty, text.utf8.count <= 128, text.utf8.allSatisfy(Self.isIdentifierByte) else {
            throw GatewayError(.invalidRequest, "\(name) must be 1 to 128 letters, digits, '-', '_', '.', '~' or '*'")
        }
        return text
    }

    func serviceId(_ exchange: Exchange, channel: DeliveryChannel) throws(GatewayError) -> String {
        try self.serviceId(given: exchange.queryValue("serviceId"), channel: channel)
    }

    func serviceId(given: String?, channel: DeliveryChannel) throws(GatewayError) -> String {
        guard let serviceId = given ?? self.configuration.defaultServiceID(for: channel.rawValue) else {
            throw GatewayError(.invalidRequest, "no serviceId given and no default \(channel.rawValue) service ID configured")
        }
        guard Self.isServiceId(serviceId) else {
            throw GatewayError(.invalidRequest, "serviceId must be a SENS service ID such as ncp:sms:kr:123456789012:name")
        }
        return serviceId
    }

    /// A SENS service ID: 1–200 of the identifier characters and `:` (`ncp:sms:kr:123456789012:name`).
    static func isServiceId(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 200 && text.utf8.allSatisfy { Self.isIdentifierByte($0) || $0 == UInt8(ascii: ":") }
    }

    static func isIdentifierByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"), UInt8(ascii: "*"): true
        default: false
        }
    }

    static func includeRaw(_ exchange: Exchange) -> Bool {
        exchange.queryValues("include").contains { $0.split(separator: ",").contains("raw") }
    }

    /// A header value as it may appear in an error message: visible ASCII only, at most 64 bytes.
    static func printable(_ text: String) -> String {
        String(decoding: text.utf8.prefix(64).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    // MARK: Output

    func count(_ result: DeliveryResult, record: RequestRecord?) {
        self.series(of: result).increment()
        record?.resultClass = result.resultClass.rawValue
    }

    /// A cached result counts in the series it keeps (found once), not by a lookup per hit.
    func count(_ entry: ResultCache.Entry, record: RequestRecord?) {
        if let series = entry.series { series.increment() } else { self.series(of: entry.result).increment() }
        record?.resultClass = entry.result.resultClass.rawValue
    }

    /// The `sensgate_delivery_results_total` series of a result: only codes in the table are label values.
    func series(of result: DeliveryResult) -> Prometheus.Counter {
        let code = result.code
        return self.metrics.resultSeries(
            channel: result.channel.rawValue, namespace: code?.namespace.rawValue ?? "none",
            code: code.map { $0.known ? $0.value : "unknown" } ?? "none", resultClass: result.resultClass.rawValue)
    }
}
