import DeliveryResults
import Logging
import NIOCore
import NIOPosix
import SENSClient
import ServiceLifecycle
import Store

#if canImport(Glibc)
import Glibc
#endif

/// Follows every tracked request to its final results (PRODUCT.md §6): claims what is due from the store, reads it
/// from SENS through the same signer, client, admission and breaker as caller traffic, within its own share of the
/// budget (`track-rate`), and writes each poll — results, the events of messages that became final, the next poll —
/// as one transaction. Started with the server, stopped before the upstream client; a poll in progress finishes.
///
/// Calls per poll: SENS lists a Kakao request's messages with their status, so a Kakao poll is one list call. It lists
/// an SMS request's messages without status, so an SMS poll reads each open message by id (after one list call, the
/// first time, to learn the ids).
struct Tracker: Service {
    let store: any DeliveryStore
    let results: DeliveryLookup
    let schedule: TrackSchedule
    /// The tracker's share of the SENS budget, in calls.
    let budget: TokenBucket
    let metrics: GatewayMetrics
    let logger: Logger
    /// Told of every request the tracker closes (for `?wait=` readers).
    let completions: Completions
    /// Whether a caller has a webhook: only then does a final message become an event.
    let webhooks: WebhookDirectory
    /// Requests polled at once.
    var concurrency = 8
    /// How long a claim holds: well past the longest a poll can take (its calls are bounded by the upstream timeout).
    var lease: StoreTime = 120_000

    /// How long to sleep when nothing is due: a fraction of the first poll's delay, at most a second.
    var idleWait: Duration { min(.seconds(1), self.schedule.first / 4) }

    func run() async throws {
        await DueWork.run(
            what: "due tracked requests", concurrency: self.concurrency, idleWait: self.idleWait, metrics: self.metrics, logger: self.logger,
            claim: { () async throws(StoreError) in
                try await self.store.claimDueRequests(now: .now, limit: self.concurrency, lease: self.lease)
            },
            work: { await self.poll($0) })
    }

    /// One poll of one claimed request, written as one transaction.
    func poll(_ request: TrackedRequest) async {
        let stored: [StoredResult]
        do {
            stored = try await self.store.request(id: request.requestId)?.1 ?? []
        } catch {
            self.metrics.recordStoreError(operation: "read")
            self.logger.warning("the tracker could not read a request", metadata: ["requestId": "\(request.requestId)", "reason": "\(error)"])
            return  // the claim lapses; the request is polled again then
        }
        // The calls of one poll wait for the tracker's budget, which a fleet divides: a poll stops taking more while
        // a third of its lease is left (one call's worst case, see `Gateway`), so that its claim still holds when it
        // records what it read, and no other replica polls the same request meanwhile. What it did not read waits
        // for the next poll.
        let until = ContinuousClock.now + .milliseconds(self.lease * 2 / 3)
        // Interrupted (the process is being cancelled): nothing recorded, the claim lapses and the poll is made again.
        guard let fresh = await self.read(request, stored: stored, until: until) else { return }
        let now = StoreTime.now
        let decision = PollDecision.decide(request, stored: stored, fresh: fresh, now: now, schedule: self.schedule)
        let timestamp = now.rfc3339
        let outcome = PollOutcome(
            results: decision.results, state: decision.state, nextPollAt: decision.nextPollAt,
            makesEvents: self.webhooks.target(for: request.caller) != nil, eventBody: { PollDecision.eventBody($0, timestamp: timestamp) })
        do {
            guard try await self.store.recordPoll(request, outcome: outcome, now: now) else {
                self.logger.debug("a poll was not recorded: its claim lapsed", metadata: ["requestId": "\(request.requestId)"])
                return
            }
        } catch {
            self.metrics.recordStoreError(operation: "poll")
            self.logger.warning("the tracker could not record a poll", metadata: ["requestId": "\(request.requestId)", "reason": "\(error)"])
            return
        }
        let elapsed = Duration.milliseconds(now - request.acceptedAt)
        for result in decision.newlyFinal {
            let code = result.code
            self.metrics.recordDelivery(
                channel: result.channel.rawValue, namespace: code?.namespace.rawValue ?? "none",
                code: code.map { $0.known ? $0.value : "unknown" } ?? "none", resultClass: result.resultClass.rawValue, after: elapsed)
        }
        if decision.state != .tracking {
            self.completions.signal(request.requestId)
            self.logger.info(
                "tracked request closed", metadata: ["requestId": "\(request.requestId)", "state": "\(decision.state.rawValue)", "polls": "\(request.polls + 1)"])
        }
    }

    /// What SENS says now of the request's open messages; a call that fails, or that there is no budget for before
    /// `until`, leaves its messages as they were.
    /// - Returns: `nil` when the wait for budget was cancelled.
    private func read(_ request: TrackedRequest, stored: [StoredResult], until: ContinuousClock.Instant) async -> [DeliveryResult]? {
        guard let channel = DeliveryChannel(rawValue: request.channel) else { return [] }
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        var fresh: [DeliveryResult] = []
        var open = stored.filter { !$0.isFinal }.map(\.messageId)
        if stored.isEmpty || channel != .sms {
            switch await self.takeBudget(until: until) {
            case .taken: break
            case .timeUp: return fresh
            case .cancelled: return nil
            }
            let list = DeliveryLookup.Lookup(channel: channel, key: .request(request.requestId), serviceId: request.serviceId)
            guard case .success(let (listed, _)) = await self.results.fetch(list, requestID: RequestID.generate(), on: eventLoop, route: SignedUpstream.backgroundRoute)
            else { return [] }
            fresh = listed
            // Kakao lists carry each message's status; an SMS list only its ids.
            open = channel == .sms ? listed.filter { !$0.isFinal }.compactMap(\.messageId) : []
        }
        for messageId in open {
            switch await self.takeBudget(until: until) {
            case .taken: break
            case .timeUp: return fresh
            case .cancelled: return nil
            }
            let lookup = DeliveryLookup.Lookup(channel: channel, key: .message(messageId), serviceId: request.serviceId)
            guard case .success(let entry) = await self.results.message(
                lookup, requestID: RequestID.generate(), record: RequestRecord(), on: eventLoop, route: SignedUpstream.backgroundRoute)
            else { continue }
            fresh.removeAll { $0.messageId == messageId }
            fresh.append(entry.result)
        }
        return fresh
    }

    /// Waits for a call's worth of the tracker's budget, until `until` at the latest.
    private func takeBudget(until: ContinuousClock.Instant) async -> BudgetWait {
        // Past it, no more calls — budget or not: each may take an upstream timeout.
        if ContinuousClock.now >= until { return .timeUp }
        while !self.budget.take() {
            let next = ContinuousClock.now + .seconds(1 / max(self.budget.rate, 0.001))
            if next > until { return .timeUp }
            do {
                try await Task.sleep(until: next)
            } catch {
                return .cancelled
            }
        }
        return .taken
    }

    /// How a wait for budget ended.
    private enum BudgetWait {
        case taken
        /// Not before the poll's time was up.
        case timeUp
        case cancelled
    }
}
