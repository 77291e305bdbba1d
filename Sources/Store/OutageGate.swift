/// Fails store operations at once while the database is known to be unreachable, instead of letting each wait out
/// the operation timeout: postgres-nio's pool keeps retrying its connects and holds every request meanwhile (its own
/// circuit breaker trips only after 60 s and is not configurable through `PostgresClient`), so without this gate a
/// keyed send during an outage answered `503` after 10 s — past many callers' own timeouts, which then cannot tell
/// that nothing was sent.
///
/// An operation that times out closes the gate; while closed, only probes (the fleet heartbeat, every second) are let
/// through, one per ``probeInterval``, and the first operation to succeed opens it again — so no caller's operation
/// waits out a timeout for the database's sake once it is known not to answer (an outside test saw keyed sends wait
/// 10 s again and again while any operation could be the one to try). Writes that must not be given up for a recent
/// timeout (a settlement of what SENS has accepted) are ``Kind/essential`` and always tried. Pure logic: the store
/// keeps it under a lock and gives it the clock.
struct OutageGate: Sendable {
    /// How often an operation may try while the database is unreachable.
    static let probeInterval: Duration = .seconds(1)

    /// Since when operations have timed out (`nil`: the database answers).
    private(set) var unreachableSince: ContinuousClock.Instant?
    private var lastTry: ContinuousClock.Instant?

    /// What an operation is to the gate.
    enum Kind: Sendable {
        /// Refused at once while the database does not answer.
        case operation
        /// Tries the database while it does not answer, one per ``OutageGate/probeInterval``.
        case probe
        /// Always tried.
        case essential
    }

    /// Whether an operation may run now: always while the database answers; while it does not, a probe once per
    /// ``probeInterval`` and an essential write always.
    mutating func admit(_ kind: Kind, now: ContinuousClock.Instant) -> Bool {
        guard self.unreachableSince != nil else { return true }
        switch kind {
        case .operation: return false
        case .essential: return true
        case .probe:
            if let lastTry, now - lastTry < Self.probeInterval { return false }
            self.lastTry = now
            return true
        }
    }

    /// An operation completed (whatever its result): the database answers.
    mutating func answered() {
        self.unreachableSince = nil
        self.lastTry = nil
    }

    /// An operation timed out. An essential write's timeout does not move the next probe back (settlements timing
    /// out each second would otherwise keep the heartbeat from ever trying).
    mutating func timedOut(_ kind: Kind = .probe, now: ContinuousClock.Instant) {
        if self.unreachableSince == nil {
            self.unreachableSince = now
            self.lastTry = now
        } else if kind != .essential {
            self.lastTry = now
        }
    }
}
