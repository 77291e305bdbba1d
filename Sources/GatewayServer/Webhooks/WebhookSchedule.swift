public import Store

/// When an undelivered event is tried again, and when it is given up (PRODUCT.md §6): 5 s doubling to 1 h, each wait
/// drawn at random from its upper half (receivers that failed together are not hit together again), for up to
/// `webhook-max-age` after the event was made; then it is `failed`. Pure, the randomness given.
public struct WebhookSchedule: Sendable, Equatable {
    public var first: Duration
    public var longest: Duration
    public var maxAge: Duration

    public init(first: Duration = .seconds(5), longest: Duration = .seconds(3600), maxAge: Duration = .seconds(86_400)) {
        self.first = first
        self.longest = longest
        self.maxAge = maxAge
    }

    /// When to try again after the `attempts`-th failed attempt (1 for the first), or `nil` to give up.
    /// - Parameter jitter: A number in `0...1` (uniform in production).
    public func retryAt(after attempts: Int, createdAt: StoreTime, now: StoreTime, jitter: Double) -> StoreTime? {
        let full = TrackSchedule.doubling(self.first, times: attempts - 1, atMost: self.longest)
        let wait = full / 2 + StoreTime((Double(full / 2) * min(max(jitter, 0), 1)).rounded())
        let next = now + max(wait, 1)
        return next - createdAt > TrackSchedule.milliseconds(self.maxAge) ? nil : next
    }
}
