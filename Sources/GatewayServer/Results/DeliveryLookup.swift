import SENSClient
import DeliveryResults
import JSON
import HTTPTypes
import Hummingbird
import NIOCore
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
    let bodyBudget: BodyBudget
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

    /// `GET /v1/results/{channel}/{messageId}[?serviceId=…][&include=raw]`
    func one(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let channel = try Self.channel(context.parameters.get("channel"))
        let messageId = try Self.identifier(context.parameters.get("messageId"), name: "messageId")
        let lookup = Lookup(channel: channel, key: .message(messageId), serviceId: try self.serviceId(request, channel: channel))
        try context.record.caller?.authorize(lookup.operation)
        let entry = try await self.message(lookup, requestID: context.requestID, record: context.record).get()
        self.count(entry.result, record: context.record)
        return Self.response(entry.body(includeRaw: Self.includeRaw(request)))
    }

    /// `GET /v1/results/{channel}?requestId=…[&serviceId=…][&include=raw]`
    func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let channel = try Self.channel(context.parameters.get("channel"))
        guard let requestId = request.uri.queryParameters.get("requestId") else {
            throw GatewayError(.invalidRequest, "requestId is required: GET /v1/results/{channel}/{messageId} or ?requestId=…")
        }
        let lookup = Lookup(
            channel: channel, key: .request(try Self.identifier(requestId, name: "requestId")),
            serviceId: try self.serviceId(request, channel: channel))
        try context.record.caller?.authorize(lookup.operation)
        let (results, raw) = try await self.fetch(lookup, requestID: context.requestID, record: context.record)
        var json = JSONWriter(capacity: 1024 * max(1, results.count) + raw.count)
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
        if Self.includeRaw(request) {
            json.key("raw")
            json.raw(raw)
        }
        json.endObject()
        context.record.resultClass = best?.rawValue
        return Self.response(json.bytes)
    }

    /// `POST /v1/results:batch` with `{"lookups":[{"channel","messageId","serviceId"?}]}`: every lookup at once, answered
    /// in order, each a result or an error.
    func batch(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var request = request
        // The body is held only while it is parsed.
        let parsed = try await request.withWholeBody(upTo: self.configuration.maxBodyBytes, budget: self.bodyBudget, context: context) {
            body throws -> JSONValue in
            context.record.bytesIn = body.readableBytes
            do {
                return try JSONValue.parse(body.readableBytesView)
            } catch {
                throw GatewayError(.invalidRequest, "the body is not JSON: \(error)")
            }
        }
        guard case .array(let items)? = parsed["lookups"] else {
            throw GatewayError(.invalidRequest, #"the body must be {"lookups":[{"channel":…,"messageId":…,"serviceId":…}]}"#)
        }
        guard items.count <= Self.maxBatch else {
            throw GatewayError(.invalidRequest, "a batch holds at most \(Self.maxBatch) lookups, not \(items.count)")
        }
        let caller = context.record.caller
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
        let requestID = context.requestID
        let outcomes = await withTaskGroup(of: (Int, Result<ResultCache.Entry, GatewayError>).self) { group in
            for (index, lookup) in lookups.enumerated() {
                group.addTask {
                    switch lookup {
                    case .failure(let error):
                        return (index, .failure(error))
                    case .success(let lookup):
                        // Each lookup notes its own upstream status; the request's record is not shared across tasks.
                        return (index, await self.message(lookup, requestID: requestID, record: RequestRecord()))
                    }
                }
            }
            var ordered = [Result<ResultCache.Entry, GatewayError>?](repeating: nil, count: lookups.count)
            for await (index, outcome) in group { ordered[index] = outcome }
            return ordered
        }
        let includeRaw = Self.includeRaw(request)
        var json = JSONWriter(capacity: 1024 * max(1, outcomes.count))
        json.beginObject()
        json.key("results")
        json.beginArray()
        for outcome in outcomes {
            switch outcome {
            case .success(let entry)?:
                self.count(entry.result, record: nil)
                json.raw(entry.body(includeRaw: includeRaw))
            case .failure(let error)?:
                error.write(into: &json, requestID: requestID)
            case nil:
                GatewayError(.internalError, "lookup did not finish").write(into: &json, requestID: requestID)
            }
        }
        json.endArray()
        json.endObject()
        return Self.response(json.bytes)
    }

    // MARK: Upstream

    /// One message's result: from the cache, from a lookup already in flight for the same message, or from SENS
    /// (then cached if final). Only a result for the message asked for is returned or cached.
    func message(_ lookup: Lookup, requestID: String, record: RequestRecord) async -> Result<ResultCache.Entry, GatewayError> {
        guard let key = lookup.cacheKey, case .message(let messageId) = lookup.key else {
            return .failure(GatewayError(.internalError, "not a message lookup"))
        }
        if let hit = self.cache.get(key) {
            self.metrics.recordCache(outcome: "hit")
            return .success(hit)
        }
        let (outcome, shared) = await self.coalescer.run(key) { () async -> Result<ResultCache.Entry, GatewayError> in
            do throws(GatewayError) {
                let (results, raw) = try await self.fetch(lookup, requestID: requestID, record: record)
                guard let result = results.first(where: { $0.messageId == messageId }) else {
                    return .failure(
                        results.isEmpty
                            ? GatewayError(.notFound, "SENS returned no such message", upstreamStatus: record.upstreamStatus)
                            : GatewayError(.upstreamMalformed, "SENS answered with another message than the one asked for", upstreamStatus: 200))
                }
                var json = JSONWriter(capacity: 1024)
                result.write(into: &json)
                let entry = ResultCache.Entry(result: result, raw: raw, json: json.bytes)
                self.cache.put(key, entry)
                return .success(entry)
            } catch {
                return .failure(error)
            }
        }
        self.metrics.recordCache(outcome: shared ? "coalesced" : "miss")
        return outcome
    }

    /// Looks results up in SENS and normalizes them (in the calling task, never on the upstream client's thread).
    /// - Returns: The results and SENS's body (for `include=raw`).
    func fetch(_ lookup: Lookup, requestID: String, record: RequestRecord) async throws(GatewayError) -> ([DeliveryResult], [UInt8]) {
        let request = UpstreamRequest(method: "GET", target: lookup.target, headers: [("accept", "application/json"), ("x-request-id", requestID)])
        // Not cancelled with the calling task: callers of other connections may share this lookup.
        let sent = await withCheckedContinuation { continuation in
            self.upstream.send(request, route: "/v1/results", record: record, cancellation: nil) { continuation.resume(returning: $0) }
        }
        return try sent.mapError { GatewayError($0, method: "GET") }.flatMap { self.normalize($0, lookup: lookup) }.get()
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

    func serviceId(_ request: Request, channel: DeliveryChannel) throws(GatewayError) -> String {
        try self.serviceId(given: request.uri.queryParameters.get("serviceId"), channel: channel)
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

    static func includeRaw(_ request: Request) -> Bool {
        request.uri.queryParameters.getAll("include").contains { $0.split(separator: ",").contains("raw") }
    }

    /// A header value as it may appear in an error message: visible ASCII only, at most 64 bytes.
    static func printable(_ text: String) -> String {
        String(decoding: text.utf8.prefix(64).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    // MARK: Output

    func count(_ result: DeliveryResult, record: RequestRecord?) {
        let code = result.code
        self.metrics.recordResult(
            channel: result.channel.rawValue, namespace: code?.namespace.rawValue ?? "none",
            code: code.map { $0.known ? $0.value : "unknown" } ?? "none", resultClass: result.resultClass.rawValue)
        record?.resultClass = result.resultClass.rawValue
    }

    static func response(_ bytes: [UInt8]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
