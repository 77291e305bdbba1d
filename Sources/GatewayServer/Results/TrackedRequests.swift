import JSON
import NIOCore
import NIOHTTP1
import Store

#if canImport(Glibc)
import Glibc
#endif

/// `GET /v1/requests/{requestId}[?wait=SECONDS]` (PRODUCT.md §6): a tracked send as the store has it — its state
/// and each message's latest unified result; with `wait` (at most 60), answered as soon as it is no longer
/// `tracking`, or when the wait ends. A caller sees only its own requests (without caller tokens every request is
/// `anonymous`'s); anyone else's, like an untracked one, is `404`.
struct TrackedRequests: Sendable {
    let store: (any DeliveryStore)?
    /// Signalled by the tracker when it closes a request.
    let completions: Completions

    func one(_ exchange: Exchange, requestId: Substring) throws(GatewayError) -> Reply {
        let requestId = try DeliveryLookup.identifier(String(requestId), name: "requestId")
        let wait = try exchange.wait()
        guard let store = self.store else { throw Self.notTracked }
        let caller = exchange.record.caller?.name ?? "anonymous"
        let completions = self.completions
        return .later { responder in
            Task {
                let deadline = ContinuousClock.now + wait
                do {
                    while true {
                        guard let (request, results) = try await store.request(id: requestId), request.caller == caller else {
                            return responder.answer(.failure(Self.notTracked))
                        }
                        let left = deadline - .now
                        guard request.state == .tracking, left > .zero, !completions.isStopped else {
                            guard results.allSatisfy({ TrackingJSON.isJSON($0.json) }) else { return responder.answer(.failure(TrackingJSON.damaged)) }
                            return responder.answer(.success(.json(.ok, Self.body(request, results: results))))
                        }
                        await completions.wait(for: requestId, timeout: min(left, .seconds(1)))
                    }
                } catch {
                    responder.answer(.failure(GatewayError(.storeUnavailable, "the store could not be read; try again shortly", retryAfterSeconds: 1)))
                }
            }
        }
    }

    private static var notTracked: GatewayError { GatewayError(.notFound, "no tracked request with this requestId") }

    /// `{"requestId","channel","serviceId","caller","state","acceptedAt","results":[…]}`
    static func body(_ request: TrackedRequest, results: [StoredResult]) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + results.reduce(0) { $0 + $1.json.utf8.count })
        json.beginObject()
        json.key(literal: "requestId")
        json.string(request.requestId)
        json.key(literal: "channel")
        json.string(request.channel)
        json.key(literal: "serviceId")
        json.string(request.serviceId)
        json.key(literal: "caller")
        json.string(request.caller)
        json.key(literal: "state")
        json.string(request.state.rawValue)
        json.key(literal: "acceptedAt")
        json.string(request.acceptedAt.rfc3339)
        json.key(literal: "results")
        json.beginArray()
        for result in results { json.raw(result.json.utf8) }
        json.endArray()
        json.endObject()
        return json.bytes
    }
}
