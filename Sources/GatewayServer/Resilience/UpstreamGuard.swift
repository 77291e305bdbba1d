import Synchronization

/// Protects the SENS account: a token bucket on upstream calls, a cap on calls in flight, and a circuit breaker
/// that fails fast while SENS cannot be connected to.
final class UpstreamGuard: Sendable {
    /// Why a call was not let through.
    enum Refusal: Error, Equatable {
        case rateLimited
        case tooManyInFlight
        case circuitOpen(retryAfterSeconds: Int)
    }

    private let bucket: TokenBucket?
    private let maxInFlight: Int
    private let inFlight = Atomic<Int>(0)
    let breaker: CircuitBreaker

    init(rate: Double, burst: Int, maxInFlight: Int, breakerThreshold: Int, breakerCooldown: Duration) {
        self.bucket = rate > 0 ? TokenBucket(rate: rate, burst: max(1, burst)) : nil
        self.maxInFlight = maxInFlight
        self.breaker = CircuitBreaker(threshold: breakerThreshold, cooldown: breakerCooldown)
    }

    /// Lets one call through or says why not; a call let through must be followed by ``release()``.
    func admit(now: ContinuousClock.Instant = .now) throws(Refusal) {
        try self.breaker.admit(now: now)
        if let bucket, !bucket.take(now: now) {
            self.breaker.abandonProbe()
            throw .rateLimited
        }
        let current = self.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        if current > self.maxInFlight {
            self.inFlight.wrappingSubtract(1, ordering: .relaxed)
            self.breaker.abandonProbe()
            throw .tooManyInFlight
        }
    }

    func release() {
        self.inFlight.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
final class TokenBucket: Sendable {
    private struct State {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    private let state: Mutex<State>

    init(rate: Double, burst: Int, now: ContinuousClock.Instant = .now) {
        self.rate = rate
        self.burst = Double(burst)
        self.state = Mutex(State(tokens: Double(burst), updated: now))
    }

    /// Takes one token if there is one.
    func take(now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            let seconds = (now - state.updated).secondsValue
            if seconds > 0 {
                state.tokens = min(self.burst, state.tokens + seconds * self.rate)
                state.updated = now
            }
            guard state.tokens >= 1 else { return false }
            state.tokens -= 1
            return true
        }
    }
}

/// Opens after `threshold` consecutive connect failures and fails calls fast for `cooldown`; then lets one probe
/// through (half-open): its success closes the circuit, its failure opens it again.
final class CircuitBreaker: Sendable {
    enum Phase: Equatable {
        case closed
        case open(until: ContinuousClock.Instant)
        case probing
    }

    private struct State {
        var failures = 0
        var phase = Phase.closed
    }

    let threshold: Int
    let cooldown: Duration
    private let state = Mutex(State())

    /// - Parameters:
    ///   - threshold: Consecutive connect failures that open the circuit; 0 disables the breaker.
    ///   - cooldown: How long it stays open before a probe.
    init(threshold: Int, cooldown: Duration) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    var phase: Phase { self.state.withLock { $0.phase } }

    func admit(now: ContinuousClock.Instant = .now) throws(UpstreamGuard.Refusal) {
        guard self.threshold > 0 else { return }
        let refusal = self.state.withLock { state -> UpstreamGuard.Refusal? in
            switch state.phase {
            case .closed:
                return nil
            case .open(let until) where now >= until:
                state.phase = .probing
                return nil
            case .open(let until):
                let left = until - now
                return .circuitOpen(retryAfterSeconds: max(1, Int(left.components.seconds) + 1))
            case .probing:
                return .circuitOpen(retryAfterSeconds: 1)
            }
        }
        if let refusal { throw refusal }
    }

    /// The probe let through was not sent after all (refused by another limit): let the next call probe.
    func abandonProbe() {
        self.state.withLock { state in
            if state.phase == .probing { state.phase = .open(until: .now) }
        }
    }

    /// The upstream answered (any HTTP status): it is reachable.
    func recordSuccess() {
        guard self.threshold > 0 else { return }
        self.state.withLock { state in
            state.failures = 0
            state.phase = .closed
        }
    }

    /// No connection could be made.
    /// - Returns: `true` when this failure opened the circuit.
    @discardableResult
    func recordConnectFailure(now: ContinuousClock.Instant = .now) -> Bool {
        guard self.threshold > 0 else { return false }
        return self.state.withLock { state in
            state.failures += 1
            switch state.phase {
            case .probing:
                state.phase = .open(until: now + self.cooldown)
                return true
            case .closed where state.failures >= self.threshold:
                state.phase = .open(until: now + self.cooldown)
                return true
            default:
                return false
            }
        }
    }
}
