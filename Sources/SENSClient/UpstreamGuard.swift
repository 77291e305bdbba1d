import Synchronization
import UpstreamClient

/// Protects the SENS account: a token bucket on upstream calls (shared by every call), caps on calls in flight — one
/// for sends and one for lookups, so that a storm of batch lookups cannot take every slot from sends — and a circuit
/// breaker that fails fast while SENS cannot be connected to.
package final class UpstreamGuard: Sendable {
    /// Which in-flight cap a call counts against.
    package enum Kind {
        /// `GET` and `HEAD`: result lookups and reads.
        case lookup
        /// Every other method: sends and changes.
        case send

        package init(method: String) {
            self = UpstreamRequest.isRepeatable(method: method) ? .lookup : .send
        }
    }

    /// Why a call was not let through.
    package enum Refusal: Error, Equatable {
        case rateLimited
        case tooManyInFlight
        case circuitOpen(retryAfterSeconds: Int)
    }

    /// The limit on calls per second (`upstream-rate`), if any.
    package let bucket: TokenBucket?
    /// The most calls of each kind in flight at once.
    private let maxInFlight: Int
    private let lookupsInFlight = Atomic<Int>(0)
    private let sendsInFlight = Atomic<Int>(0)
    package let breaker: CircuitBreaker

    /// - Parameters:
    ///   - probeDeadline: How long a half-open probe may take before another is let through (a safety net: every
    ///     probe's own outcome closes or reopens the circuit).
    package init(rate: Double, burst: Int, maxInFlight: Int, breakerThreshold: Int, breakerCooldown: Duration, probeDeadline: Duration) {
        self.bucket = rate > 0 ? TokenBucket(rate: rate, burst: max(1, burst)) : nil
        self.maxInFlight = maxInFlight
        self.breaker = CircuitBreaker(threshold: breakerThreshold, cooldown: breakerCooldown, probeDeadline: probeDeadline)
    }

    /// Lets one call through or says why not; a call let through must be followed by ``release(_:)``, and its outcome
    /// given to the breaker with the admission returned.
    /// - Parameter background: The gateway's own call (the tracker's polls): caller traffic first, so it is let through
    ///   only while it leaves half the bucket (a bucket of one token cannot keep a reserve) and half the lookup slots
    ///   free.
    func admit(_ kind: Kind, background: Bool = false, now: ContinuousClock.Instant = .now) throws(Refusal) -> CircuitBreaker.Admission {
        if background {
            if let bucket, !bucket.leavesReserve(now: now) { throw .rateLimited }
            if self.lookupsInFlight.load(ordering: .relaxed) >= self.maxInFlight / 2 { throw .tooManyInFlight }
        }
        let admission = try self.breaker.admit(now: now)
        if let bucket, !bucket.take(now: now) {
            self.breaker.abandon(admission, now: now)
            throw .rateLimited
        }
        if self.add(1, to: kind) > self.maxInFlight {
            self.add(-1, to: kind)
            self.breaker.abandon(admission, now: now)
            throw .tooManyInFlight
        }
        return admission
    }

    func release(_ kind: Kind) {
        self.add(-1, to: kind)
    }

    /// Adds to a kind's count of calls in flight. - Returns: The new count.
    @discardableResult
    private func add(_ delta: Int, to kind: Kind) -> Int {
        switch kind {
        case .lookup: self.lookupsInFlight.wrappingAdd(delta, ordering: .relaxed).newValue
        case .send: self.sendsInFlight.wrappingAdd(delta, ordering: .relaxed).newValue
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second — or its ``share(_:)`` of them, when a fleet of
/// replicas divides one budget (PRODUCT.md §8).
package final class TokenBucket: Sendable {
    private struct State {
        var tokens: Double
        var updated: ContinuousClock.Instant
        /// The configured rate and burst times this replica's share.
        var rate: Double
        var burst: Double
    }

    /// The configured (whole-fleet) rate and burst.
    private let fullRate: Double
    private let fullBurst: Double
    private let state: Mutex<State>

    package init(rate: Double, burst: Int, now: ContinuousClock.Instant = .now) {
        self.fullRate = rate
        self.fullBurst = Double(burst)
        self.state = Mutex(State(tokens: Double(burst), updated: now, rate: rate, burst: Double(burst)))
    }

    /// Tokens per second, as shared now.
    package var rate: Double { self.state.withLock { $0.rate } }

    /// Takes `fraction` (0 < fraction ≤ 1) of the configured rate and burst from `now` on: tokens earned so far at the
    /// old rate are kept, but never more than the new burst (a replica whose share shrinks cannot spend its old one).
    /// The burst never goes below one token, so every replica can always make a call.
    package func share(_ fraction: Double, now: ContinuousClock.Instant = .now) {
        let fraction = min(1, max(fraction, .leastNormalMagnitude))
        self.state.withLock { state in
            Self.refill(&state, now: now)
            state.rate = self.fullRate * fraction
            state.burst = max(1, self.fullBurst * fraction)
            state.tokens = min(state.tokens, state.burst)
        }
    }

    /// Whether taking a token now would leave the callers' reserve: half the burst, or — for a burst of under two
    /// tokens (a small one shared among replicas) — everything but that token, so that background work takes only
    /// from a bucket callers have left full.
    package func leavesReserve(now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            Self.available(state, now: now) - 1 >= min(state.burst / 2, state.burst - 1)
        }
    }

    /// Takes one token if there is one.
    package func take(now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            Self.refill(&state, now: now)
            guard state.tokens >= 1 else { return false }
            state.tokens -= 1
            return true
        }
    }

    /// The tokens there are at `now`: those held, plus those earned since, up to the burst.
    private static func available(_ state: State, now: ContinuousClock.Instant) -> Double {
        min(state.burst, state.tokens + max(0, (now - state.updated).secondsValue) * state.rate)
    }

    private static func refill(_ state: inout State, now: ContinuousClock.Instant) {
        guard now > state.updated else { return }
        state.tokens = Self.available(state, now: now)
        state.updated = now
    }
}
