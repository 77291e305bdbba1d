import JSON
import NIOCore
import NIOHTTP1
import Store

#if canImport(Glibc)
import Glibc
#endif

/// `GET /v1/events[?state=failed|pending|delivered][&limit=N]` and `POST /v1/events/{id}:redeliver` (PRODUCT.md §6):
/// the webhook outbox as the store has it, and a failed event queued again. A caller sees and redelivers only its own
/// events (without caller tokens every event is `anonymous`'s).
struct DeliveryEvents: Sendable {
    let store: (any DeliveryStore)?

    static let defaultLimit = 100
    static let largestLimit = 1000

    /// `GET /v1/events`
    func list(_ exchange: Exchange) throws(GatewayError) -> Reply {
        let stateText = exchange.queryValue("state") ?? "failed"
        guard let state = StoredEvent.State(rawValue: stateText) else {
            throw GatewayError(.invalidRequest, "state must be failed, pending or delivered")
        }
        let limit = try Self.limit(exchange)
        let store = try self.requireStore()
        let caller = exchange.record.caller?.name ?? "anonymous"
        return .later { responder in
            Task {
                do {
                    let events = try await store.events(state: state, caller: caller, limit: limit)
                    guard events.allSatisfy({ TrackingJSON.isJSON($0.body) }) else { return responder.answer(.failure(TrackingJSON.damaged)) }
                    responder.answer(.success(.json(.ok, Self.body(events))))
                } catch {
                    responder.answer(.failure(Self.unavailable))
                }
            }
        }
    }

    /// `POST /v1/events/{id}:redeliver`
    func redeliver(_ exchange: Exchange, eventId: Substring) throws(GatewayError) -> Reply {
        let eventId = try DeliveryLookup.identifier(String(eventId), name: "the event id")
        let store = try self.requireStore()
        let caller = exchange.record.caller?.name ?? "anonymous"
        return .later { responder in
            Task {
                do {
                    guard try await store.redeliver(eventId: eventId, caller: caller, now: .now) else {
                        return responder.answer(.failure(GatewayError(.notFound, "no failed event with this id")))
                    }
                    responder.answer(.success(.json(.accepted, Array(#"{"id":"\#(eventId)","state":"pending"}"#.utf8))))
                } catch {
                    responder.answer(.failure(Self.unavailable))
                }
            }
        }
    }

    private static func limit(_ exchange: Exchange) throws(GatewayError) -> Int {
        guard let text = exchange.queryValue("limit") else { return Self.defaultLimit }
        guard let value = Int(text), (1...Self.largestLimit).contains(value) else {
            throw GatewayError(.invalidRequest, "limit must be a whole number from 1 to \(Self.largestLimit)")
        }
        return value
    }

    private func requireStore() throws(GatewayError) -> any DeliveryStore {
        guard let store = self.store else { throw GatewayError(.notFound, "no store is open: nothing is tracked") }
        return store
    }

    private static var unavailable: GatewayError { GatewayError(.storeUnavailable, "the store could not be read; try again shortly", retryAfterSeconds: 1) }

    /// `{"events":[{"id","requestId","messageId","caller","state","attempts","createdAt","nextAttemptAt","event":{…}}]}`
    static func body(_ events: [StoredEvent]) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + events.reduce(0) { $0 + $1.body.utf8.count + 256 })
        json.beginObject()
        json.key(literal: "events")
        json.beginArray()
        for event in events {
            json.beginObject()
            json.key(literal: "id")
            json.string(event.id)
            json.key(literal: "requestId")
            json.string(event.requestId)
            json.key(literal: "messageId")
            json.string(event.messageId)
            json.key(literal: "caller")
            json.string(event.caller)
            json.key(literal: "state")
            json.string(event.state.rawValue)
            json.key(literal: "attempts")
            json.int(event.attempts)
            json.key(literal: "createdAt")
            json.string(event.createdAt.rfc3339)
            json.key(literal: "nextAttemptAt")
            json.string(event.nextAttemptAt.rfc3339)
            json.key(literal: "event")
            json.raw(event.body.utf8)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.bytes
    }

}
