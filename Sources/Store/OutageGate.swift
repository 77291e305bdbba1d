/// Fails store operations at once while the database is known to be unreachable, instead of letting each wait out
/// the operation timeout: postgres-nio's pool keeps retrying its connects and holds every request meanwhile (its own
/// circuit breaker trips only after 60 s and is not configurable through `PostgresClient`), so without this gate a
/// keyed send during an outage answered `503` after 10 s — past many callers' own timeouts, which then cannot tell
/// that nothing was sent.
///
/// An operation that times out closes the gate; while closed, one operation per ``probeInterval`` is let through to
/// try (the fleet heartbeat, every second, is usually that one), and the first to succeed opens it again. Pure
/// logic: the store keeps it under a lock and gives it the clock.
struct OutageGate: Sendable {
    /// How often an operation may try while the database is unreachable.
    static let probeInterval: Duration = .seconds(1)

    /// Since when operations have timed out (`nil`: the database answers).
    private(set) var unreachableSince: ContinuousClock.Instant?
    private var lastTry: ContinuousClock.Instant?

    /// Whether an operation may run now: always while the database answers; while it does not, one per
    /// ``probeInterval``.
    mutating func admit(now: ContinuousClock.Instant) -> Bool {
        guard self.unreachableSince != nil else { return true }
        if let lastTry, now - lastTry < Self.probeInterval { return false }
        self.lastTry = now
        return true
    }

    /// An operation completed (whatever its result): the database answers.
    mutating func answered() {
        self.unreachableSince = nil
        self.lastTry = nil
    }

    /// An operation timed out.
    mutating func timedOut(now: ContinuousClock.Instant) {
        if self.unreachableSince == nil { self.unreachableSince = now }
        self.lastTry = now
    }
}
