import UpstreamClient
/// When and how long to wait before trying an upstream call again.
///
/// Only calls that cannot do harm twice are retried: any method when no connection could be made (nothing was
/// sent), and idempotent methods (GET, HEAD) also after a reset, a 5xx or a 429. A POST whose bytes may have left is
/// never sent again. Waits grow exponentially with full jitter, honour `Retry-After`, and all attempts together stay
/// inside one deadline.
public struct RetryPolicy: Sendable, Equatable {
    /// Extra attempts after the first; 0 disables retries.
    public var maxRetries: Int
    /// The first backoff ceiling; each retry doubles it, up to ``maxBackoff``.
    public var baseBackoff: Duration
    /// The largest backoff ceiling.
    public var maxBackoff: Duration

    public init(maxRetries: Int = 2, baseBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(2)) {
        self.maxRetries = maxRetries
        self.baseBackoff = baseBackoff
        self.maxBackoff = maxBackoff
    }

    /// What went wrong with one attempt.
    public enum Outcome: Sendable, Equatable {
        /// Nothing of the request was sent (no connection, connect timeout, TLS failure).
        case connectFailed
        /// The connection failed after the request was sent.
        case connectionLost
        case status(Int, retryAfterSeconds: Int?)
        case other
    }

    /// Whether an outcome may be retried for a method.
    public static func isRetryable(_ outcome: Outcome, method: String) -> Bool {
        let idempotent = UpstreamRequest.isRepeatable(method: method)
        switch outcome {
        case .connectFailed: return true
        case .connectionLost: return idempotent
        case .status(let status, _): return idempotent && (status == 429 || (500...599).contains(status))
        case .other: return false
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), or `nil` when no retry fits.
    /// - Parameters:
    ///   - retry: Which retry this would be.
    ///   - outcome: What the last attempt gave; a `Retry-After` is a floor for the wait.
    ///   - remaining: Time left before the deadline; the wait and some time for the attempt must fit.
    ///   - random: A number in `0..<1` for the jitter.
    public func delay(beforeRetry retry: Int, after outcome: Outcome, remaining: Duration, random: Double) -> Duration? {
        guard retry <= self.maxRetries else { return nil }
        var ceiling = self.baseBackoff
        for _ in 1..<max(retry, 1) where ceiling < self.maxBackoff { ceiling *= 2 }
        ceiling = min(ceiling, self.maxBackoff)
        var wait = ceiling * random
        if case .status(_, let retryAfter?) = outcome {
            wait = max(wait, .seconds(retryAfter))
        }
        // Leave at least as long for the attempt itself as for the wait's ceiling, so a retry can still answer.
        guard wait + max(ceiling, .milliseconds(50)) < remaining else { return nil }
        return wait
    }
}
