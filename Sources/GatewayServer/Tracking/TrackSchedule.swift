public import Store

/// When a tracked request is polled, and when it is given up (PRODUCT.md §6): first 2 s after acceptance (or after
/// its `reserveTime`), then doubling to at most 5 minutes; closed as expired after `track-max-age`. Pure.
public struct TrackSchedule: Sendable, Equatable {
    /// The first poll's delay, and the unit the schedule doubles from.
    public var first: Duration
    /// The longest wait between two polls.
    public var longest: Duration
    /// How long a request is followed before it is closed as expired.
    public var maxAge: Duration

    public init(first: Duration = .seconds(2), longest: Duration = .seconds(300), maxAge: Duration = .seconds(259_200)) {
        self.first = first
        self.longest = longest
        self.maxAge = maxAge
    }

    /// The first poll of a request accepted at `acceptedAt`, to be sent at `reserveAt` if scheduled.
    public func firstPoll(acceptedAt: StoreTime, reserveAt: StoreTime?) -> StoreTime {
        max(acceptedAt, reserveAt ?? acceptedAt) + Self.milliseconds(self.first)
    }

    /// The poll after the `polls`-th (1 for the poll just made): `first` doubled `polls` times, at most `longest`.
    public func nextPoll(after polls: Int, now: StoreTime) -> StoreTime {
        now + Self.doubling(self.first, times: polls, atMost: self.longest)
    }

    /// Whether a request accepted at `acceptedAt` (scheduled for `reserveAt`) has been followed long enough.
    public func isExpired(acceptedAt: StoreTime, reserveAt: StoreTime?, now: StoreTime) -> Bool {
        now - max(acceptedAt, reserveAt ?? acceptedAt) >= Self.milliseconds(self.maxAge)
    }

    /// `first` doubled `times` times, at most `longest`, in milliseconds (the tracker's and the webhook sender's
    /// backoff).
    static func doubling(_ first: Duration, times: Int, atMost longest: Duration) -> StoreTime {
        // Doubling stops well before it could overflow: 2^20 × the first delay is past any sane longest.
        min(Self.milliseconds(first) << StoreTime(min(max(times, 0), 20)), Self.milliseconds(longest))
    }

    static func milliseconds(_ duration: Duration) -> StoreTime {
        let (seconds, attoseconds) = duration.components
        return StoreTime(seconds) * 1000 + StoreTime(attoseconds / 1_000_000_000_000_000)
    }
}
