import Synchronization

/// Fails calls fast while SENS cannot be reached, and always finds out again when it can.
///
/// Closed, it counts consecutive calls that reached nothing (no connection, no TLS session: ``Outcome/unreachable``)
/// and opens after `threshold` of them. Open, it refuses calls for `cooldown`, then lets one probe through
/// (half-open). Every outcome of that probe ends the half-open phase: an answer closes the circuit; no connection,
/// a timeout, a reset or a TLS failure reopens it for another cooldown; a probe that was never sent (refused by another
/// limit, cancelled) reopens it with no wait, so the next call probes. A probe whose outcome never comes is replaced
/// after `probeDeadline`. Any answer from SENS, to any call, closes the circuit.
///
/// The decisions are ``StateMachine``'s, a value behind a mutex: computed under the lock, reported after it.
package final class CircuitBreaker: Sendable {
    /// Where the circuit is.
    package enum Phase: Equatable {
        case closed
        case open(until: ContinuousClock.Instant)
        /// One probe is out (its number, and when it left).
        case probing(since: ContinuousClock.Instant, probe: UInt64)

        /// For the `sensgate_upstream_circuit_state` gauge: 0 closed, 1 open, 2 probing.
        package var gaugeValue: Int {
            switch self {
            case .closed: 0
            case .open: 1
            case .probing: 2
            }
        }
    }

    /// How a call was let through.
    package enum Admission: Equatable {
        /// An ordinary call.
        case call
        /// The half-open probe with this number: its outcome decides the circuit.
        case probe(UInt64)
    }

    /// What a call found out about SENS.
    enum Outcome: Equatable {
        /// SENS answered (any HTTP status, even a malformed body): it is reachable.
        case reachable
        /// Nothing was sent: no connection, connect timeout, TLS failure.
        case unreachable
        /// Sent, but no answer: a timeout or a reset after the request left.
        case noAnswer
    }

    /// What changed, for metrics and logs.
    enum Transition: Equatable {
        case opened
        case reopened
        case closed
    }

    struct StateMachine {
        let threshold: Int
        let cooldown: Duration
        let probeDeadline: Duration
        private(set) var phase = Phase.closed
        private var failures = 0
        private var lastProbe: UInt64 = 0

        init(threshold: Int, cooldown: Duration, probeDeadline: Duration) {
            self.threshold = threshold
            self.cooldown = cooldown
            self.probeDeadline = probeDeadline
        }

        mutating func admit(now: ContinuousClock.Instant) throws(UpstreamGuard.Refusal) -> Admission {
            guard self.threshold > 0 else { return .call }
            switch self.phase {
            case .closed:
                return .call
            case .open(let until) where now >= until:
                return self.startProbe(now: now)
            case .open(let until):
                throw .circuitOpen(retryAfterSeconds: max(1, Int((until - now).components.seconds) + 1))
            case .probing(let since, _) where now - since >= self.probeDeadline:
                return self.startProbe(now: now)
            case .probing:
                throw .circuitOpen(retryAfterSeconds: 1)
            }
        }

        private mutating func startProbe(now: ContinuousClock.Instant) -> Admission {
            self.lastProbe += 1
            self.phase = .probing(since: now, probe: self.lastProbe)
            return .probe(self.lastProbe)
        }

        /// The admitted call was not sent after all (refused by another limit, cancelled, shutting down).
        mutating func abandon(_ admission: Admission, now: ContinuousClock.Instant) {
            guard case .probe(let number) = admission, case .probing(_, number) = self.phase else { return }
            self.phase = .open(until: now)
        }

        mutating func record(_ outcome: Outcome, for admission: Admission, now: ContinuousClock.Instant) -> Transition? {
            guard self.threshold > 0 else { return nil }
            if case .probe(let number) = admission, case .probing(_, number) = self.phase {
                switch outcome {
                case .reachable:
                    return self.close()
                case .unreachable, .noAnswer:
                    self.phase = .open(until: now + self.cooldown)
                    return .reopened
                }
            }
            switch outcome {
            case .reachable:
                return self.close()
            case .unreachable:
                self.failures += 1
                guard self.phase == .closed, self.failures >= self.threshold else { return nil }
                self.phase = .open(until: now + self.cooldown)
                return .opened
            case .noAnswer:
                return nil
            }
        }

        private mutating func close() -> Transition? {
            self.failures = 0
            guard self.phase != .closed else { return nil }
            self.phase = .closed
            return .closed
        }
    }

    private let state: Mutex<StateMachine>

    /// - Parameters:
    ///   - threshold: Consecutive calls that reached nothing before the circuit opens; 0 disables the breaker.
    ///   - cooldown: How long it stays open before a probe.
    ///   - probeDeadline: How long a probe may be out before another is let through.
    init(threshold: Int, cooldown: Duration, probeDeadline: Duration) {
        self.state = Mutex(StateMachine(threshold: threshold, cooldown: cooldown, probeDeadline: probeDeadline))
    }

    package var phase: Phase { self.state.withLock { $0.phase } }

    /// Whether calls are refused now: open, with its cooldown still running. After the cooldown the next call probes,
    /// so the gateway counts as ready again (a readiness probe that kept it out of its Service's endpoints would
    /// leave it no call to probe with).
    package func isRefusing(now: ContinuousClock.Instant = .now) -> Bool {
        if case .open(let until) = self.phase { return now < until }
        return false
    }

    func admit(now: ContinuousClock.Instant = .now) throws(UpstreamGuard.Refusal) -> Admission {
        try self.state.withLock { state throws(UpstreamGuard.Refusal) in try state.admit(now: now) }
    }

    func abandon(_ admission: Admission, now: ContinuousClock.Instant = .now) {
        self.state.withLock { $0.abandon(admission, now: now) }
    }

    @discardableResult
    func record(_ outcome: Outcome, for admission: Admission, now: ContinuousClock.Instant = .now) -> Transition? {
        self.state.withLock { $0.record(outcome, for: admission, now: now) }
    }
}
