import DeliveryResults
import JSON
import Store

/// What one poll of a tracked request amounts to, from what the store held and what SENS answered (PRODUCT.md §6).
/// Pure: the tracker fetches, this decides, the store writes it in one transaction.
struct PollDecision {
    /// Each message's result to write (a message already final in the store is never rewritten).
    var results: [StoredResult]
    /// The messages that became final with this poll, for the delivery metrics.
    var newlyFinal: [DeliveryResult]
    var state: TrackedRequest.State
    var nextPollAt: StoreTime

    /// - Parameters:
    ///   - stored: The messages' results as the store holds them.
    ///   - fresh: What SENS answered in this poll (possibly nothing, when every call failed: the messages stay as they were).
    static func decide(
        _ request: TrackedRequest, stored: [StoredResult], fresh: [DeliveryResult], now: StoreTime, schedule: TrackSchedule
    ) -> PollDecision {
        let finalBefore = Set(stored.lazy.filter(\.isFinal).map(\.messageId))
        var latest: [String: DeliveryResult] = [:]
        for result in fresh {
            guard let id = result.messageId, !finalBefore.contains(id) else { continue }
            latest[id] = result
        }
        var known = Set(stored.map(\.messageId))
        known.formUnion(latest.keys)
        let open = known.filter { id in !finalBefore.contains(id) && latest[id]?.isFinal != true }.sorted()
        let tooOld = schedule.isExpired(acceptedAt: request.acceptedAt, reserveAt: request.reserveAt, now: now)
        let expired = tooOld && !open.isEmpty
        // Expiry closes every open message: this poll's result marked expired, or, where this poll could not read it,
        // a result that says only that.
        if expired {
            for id in open {
                latest[id] =
                    latest[id]?.expired()
                    ?? DeliveryResult.expired(
                        // The channel was checked when the send was tracked (only sms, alimtalk, brandmessage are).
                        channel: DeliveryChannel(rawValue: request.channel) ?? .sms, serviceId: request.serviceId, messageId: id,
                        requestId: request.requestId)
            }
        }
        var results: [StoredResult] = []
        var newlyFinal: [DeliveryResult] = []
        for (id, result) in latest.sorted(by: { $0.key < $1.key }) {
            let isFinal = result.isFinal
            var json = JSONWriter(capacity: 1024)
            result.write(into: &json)
            results.append(StoredResult(messageId: id, isFinal: isFinal, json: String(decoding: json.bytes, as: UTF8.self)))
            if isFinal { newlyFinal.append(result) }
        }
        let state: TrackedRequest.State
        if expired {
            state = .expired
        } else if !known.isEmpty && open.isEmpty {
            state = .completed
        } else if known.isEmpty && tooOld {
            // Never learned a message in all that time: closed, with nothing to report.
            state = .expired
        } else {
            state = .tracking
        }
        return PollDecision(
            results: results, newlyFinal: newlyFinal, state: state, nextPollAt: schedule.nextPoll(after: request.polls + 1, now: now))
    }

    /// A webhook event's body (PRODUCT.md §6): `{"type":"delivery.completed","timestamp":…,"data":<unified result>}`.
    static func eventBody(_ result: StoredResult, timestamp: String) -> String {
        #"{"type":"delivery.completed","timestamp":"\#(timestamp)","data":\#(result.json)}"#
    }
}
