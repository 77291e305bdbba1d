import DeliveryResults
import HTTPTypes

/// `GET /v1/results/{channel}/{messageId}` taken on the connection's event loop (see ``DirectResponseHandler``).
struct DirectResultLookup: Sendable {
    let lookup: DeliveryLookup
    let callers: CallerStore

    /// How a taken lookup is answered.
    enum Answer {
        /// From the cache, now: the unified JSON (with `raw` when asked).
        case cached([UInt8])
        /// From SENS (or a lookup of the same message already in flight); the cache has just missed.
        case upstream(DeliveryLookup.Lookup, includeRaw: Bool)
    }

    /// How to answer a single-message lookup, with the request's record, or `nil` for every other request —
    /// including any the router would refuse, so that those errors still come from one place, and any that asks to
    /// close the connection, which the router's connection loop handles.
    func accept(_ head: HTTPRequest) -> (answer: Answer, record: RequestRecord)? {
        guard head.method == .get, let target = head.path, target.utf8.starts(with: Self.prefix.utf8),
            RequestTarget.validate(target) == nil, let parsed = Self.parse(target),
            !DirectResponseHandler.asksToClose(head)
        else { return nil }
        guard let channel = DeliveryChannel(rawValue: parsed.channel),
            (try? DeliveryLookup.identifier(parsed.messageId, name: "messageId")) != nil,
            let serviceId = try? self.lookup.serviceId(given: parsed.serviceId, channel: channel),
            let record = RequestRecord(direct: head, route: "/v1/results", callers: self.callers)
        else { return nil }
        let lookup = DeliveryLookup.Lookup(channel: channel, key: .message(parsed.messageId), serviceId: serviceId)
        if let entry = self.lookup.cached(lookup) {
            self.lookup.count(entry.result, record: record)
            return (.cached(entry.body(includeRaw: parsed.includeRaw)), record)
        }
        return (.upstream(lookup, includeRaw: parsed.includeRaw), record)
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

