// Store: what outlives a process — tracked sends, their results, and the webhook outbox (PRODUCT.md §6, §8).

/// Milliseconds since the Unix epoch: every time the store keeps (no calendar types, no time zone).
public typealias StoreTime = Int64

/// A send the gateway follows until SENS reports a final outcome for each of its messages.
public struct TrackedRequest: Sendable, Equatable {
    /// Where the request stands.
    public enum State: String, Sendable {
        /// Polled until every message is final.
        case tracking
        /// Every message is final.
        case completed
        /// Closed after `track-max-age` with messages still open.
        case expired
    }

    /// SENS's `requestId`.
    public var requestId: String
    /// `sms`, `alimtalk` or `brandmessage`.
    public var channel: String
    public var serviceId: String
    /// The caller's name (`anonymous` without caller tokens); only its own requests are shown to a caller.
    public var caller: String
    public var acceptedAt: StoreTime
    /// When SENS sends a scheduled (`reserveTime`) message; polling starts after it.
    public var reserveAt: StoreTime?
    public var nextPollAt: StoreTime
    /// Polls made so far (the schedule doubles with each).
    public var polls: Int
    public var state: State
    /// The claim this copy was handed out under (``DeliveryStore/claimDueRequests(now:limit:lease:)``); a poll is
    /// recorded only under the claim the row still carries.
    public var claim: String?

    public init(
        requestId: String, channel: String, serviceId: String, caller: String, acceptedAt: StoreTime, reserveAt: StoreTime? = nil,
        nextPollAt: StoreTime, polls: Int = 0, state: State = .tracking
    ) {
        self.requestId = requestId
        self.channel = channel
        self.serviceId = serviceId
        self.caller = caller
        self.acceptedAt = acceptedAt
        self.reserveAt = reserveAt
        self.nextPollAt = nextPollAt
        self.polls = polls
        self.state = state
    }
}

/// One message's latest unified result (PRODUCT.md §4.2), as JSON text.
public struct StoredResult: Sendable, Equatable {
    public var messageId: String
    /// Whether the result is final (completed and not pending): it then has its event.
    public var isFinal: Bool
    /// The unified delivery result, as the gateway wrote it.
    public var json: String

    public init(messageId: String, isFinal: Bool, json: String) {
        self.messageId = messageId
        self.isFinal = isFinal
        self.json = json
    }
}

/// One webhook event in the outbox: written in the same transaction as the final result that causes it.
public struct StoredEvent: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Waiting to be delivered (or retried).
        case pending
        case delivered
        /// Given up after `webhook-max-age`; can be queued again (`redeliver`).
        case failed
    }

    /// The event's id (`webhook-id`): the same on every attempt.
    public var id: String
    public var requestId: String
    public var messageId: String
    public var caller: String
    /// The event body as it is sent (and signed).
    public var body: String
    /// When the event was made, or queued again by ``DeliveryStore/redeliver(eventId:caller:now:)``: `webhook-max-age` counts from it.
    public var createdAt: StoreTime
    public var attempts: Int
    public var nextAttemptAt: StoreTime
    public var state: State
    /// The claim this copy was handed out under; an attempt is recorded only under the claim the row still carries.
    public var claim: String?
}

/// A poll's outcome for one tracked request, written as one transaction.
public struct PollOutcome: Sendable {
    /// Each message's result as of this poll.
    public var results: [StoredResult]
    /// The request's state after the poll.
    public var state: TrackedRequest.State
    /// When to poll again (ignored unless `state` is `tracking`).
    public var nextPollAt: StoreTime
    /// The body of the event for a message that became final with this poll.
    public var eventBody: @Sendable (StoredResult) -> String
    /// Whether a message that became final gets an event: not when its caller has no webhook to send it to.
    public var makesEvents: Bool

    public init(
        results: [StoredResult], state: TrackedRequest.State, nextPollAt: StoreTime, makesEvents: Bool = true,
        eventBody: @escaping @Sendable (StoredResult) -> String
    ) {
        self.results = results
        self.state = state
        self.nextPollAt = nextPollAt
        self.makesEvents = makesEvents
        self.eventBody = eventBody
    }
}

/// How much the store holds, by state (for the §6 gauges).
public struct StoreCounts: Sendable, Equatable {
    public var requests: [TrackedRequest.State: Int]
    public var events: [StoredEvent.State: Int]
    /// Idempotency keys kept (not yet swept).
    public var keys: Int

    public init(requests: [TrackedRequest.State: Int], events: [StoredEvent.State: Int], keys: Int = 0) {
        self.requests = requests
        self.events = events
        self.keys = keys
    }
}

/// The store's one interface: domain operations, each one transaction, each safe to retry. Due work is claimed under
/// a lease (`claimed until`), so a backend shared by several replicas hands each item to one of them at a time and a
/// replica that dies has its claims taken over when they lapse.
public protocol DeliveryStore: Sendable {
    /// Whether other processes may share this store (a fleet on PostgreSQL), so that work one cannot do (an event for
    /// a caller whose webhook it does not know) may be another's to do.
    var isShared: Bool { get }

    /// Records a send to follow; recording the same request again changes nothing.
    func track(_ request: TrackedRequest) async throws(StoreError)

    /// A tracked request and its messages' latest results, or `nil` when it is not tracked.
    func request(id: String) async throws(StoreError) -> (TrackedRequest, [StoredResult])?

    /// Claims up to `limit` tracked requests due for a poll at `now`, for `lease` milliseconds.
    func claimDueRequests(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [TrackedRequest]

    /// Records a poll of a claimed request: the messages' results, an outbox event for each message that became final,
    /// the request's new state and schedule, and its claim released — all in one transaction.
    /// - Returns: `false`, writing nothing, when the claim is no longer the request's (it lapsed and another worker
    ///   claimed it, or the request is no longer tracking): a late worker never undoes a newer one's work.
    func recordPoll(_ request: TrackedRequest, outcome: PollOutcome, now: StoreTime) async throws(StoreError) -> Bool

    /// Claims up to `limit` pending events due at `now`, for `lease` milliseconds.
    func claimDueEvents(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [StoredEvent]

    /// Records a delivery attempt of a claimed event: delivered, retried at `retryAt`, or failed (`retryAt` is `nil`
    /// and `delivered` false).
    /// - Returns: `false`, writing nothing, when the claim is no longer the event's (a delivered event is never made
    ///   pending again by a late failure).
    func recordAttempt(_ event: StoredEvent, delivered: Bool, retryAt: StoreTime?) async throws(StoreError) -> Bool

    /// Events in a state, oldest first, for one caller or all.
    func events(state: StoredEvent.State, caller: String?, limit: Int) async throws(StoreError) -> [StoredEvent]

    /// Queues a failed event again, due at `now`, as if new: its attempts start again from 0 and `webhook-max-age`
    /// from `now` (its `createdAt`). Returns whether there was such a failed event.
    func redeliver(eventId: String, caller: String?, now: StoreTime) async throws(StoreError) -> Bool

    /// Claims an `Idempotency-Key` for a send, atomically (two callers, or two replicas, never both claim it), or says
    /// what its earlier use left (PRODUCT.md §7). A key older than its `ttl` counts as new.
    /// - Parameters:
    ///   - lease: How long the claim holds without a settlement: past it the call is taken to have died mid-send, and
    ///     the key answers ``KeyClaim/outcomeUnknown``.
    ///   - ttl: How long the key is kept once its send has ended: from its settlement, or from the end of its lease when
    ///     it is never settled (``sweepKeys(now:limit:)`` removes it after). Never from the claim: an answer that comes
    ///     later than `ttl` after it must still be replayed.
    func claimKey(_ key: IdempotencyKey, now: StoreTime, lease: StoreTime, ttl: StoreTime) async throws(StoreError) -> KeyClaim

    /// Writes how a claimed key's send ended at `now` (the key is kept its `ttl` from then); nothing, when the claim is
    /// no longer the key's. A tracked answer's record is written either way (the send stands).
    func settleKey(_ claim: ClaimedKey, as settlement: KeySettlement, now: StoreTime) async throws(StoreError)

    /// Removes up to `limit` keys expired at `now` (never one whose claim still holds: its send may be in flight);
    /// returns how many.
    func sweepKeys(now: StoreTime, limit: Int) async throws(StoreError) -> Int

    /// Tracked requests and events, counted by state; also the store's health check (it fails when the store cannot
    /// be used).
    func counts() async throws(StoreError) -> StoreCounts

    /// Says that `replica` is alive, and how many replicas share this store (and so its SENS account, whose budget they
    /// divide: PRODUCT.md §8): those heard from within `liveFor` milliseconds, `replica` included, by the store's
    /// own clock (replicas' clocks may differ; the database's is one).
    func heartbeat(replica: String, liveFor: StoreTime) async throws(StoreError) -> Int

    /// Takes `replica` out of the count at once (a graceful stop): the others take up its share at their next
    /// heartbeat, not when it would have lapsed.
    func leave(replica: String) async throws(StoreError)

    /// Closes the store (pending writes are committed first).
    func close() async
}
