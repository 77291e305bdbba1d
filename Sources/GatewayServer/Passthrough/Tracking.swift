import DeliveryResults
import JSON
import Logging
import NIOCore
import NIOHTTP1
import Signing
import Store
import Synchronization
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// Which sends are followed to their final results, and their tracking records (PRODUCT.md §6): a send is a
/// passthrough `POST /{sms,alimtalk,brandmessage}/v2/services/{serviceId}/messages` that SENS accepts (`202`) with a
/// `requestId`; it is tracked when the request says `X-Sensgate-Track: true` or its caller's entry says
/// `track: true` (without caller tokens: when `track` is set). The record is committed before SENS's answer goes
/// back, which then says `X-Sensgate-Tracking: <requestId>`, or `failed` when the store could not commit it within
/// `commitDeadline` (the send itself stands; a late commit still lands: recording is idempotent).
struct Tracking: Sendable {
    /// The store, when one is open.
    let store: (any DeliveryStore)?
    /// Whether sends are tracked without being asked, when no caller tokens are configured.
    let trackByDefault: Bool
    /// How long SENS's accepted answer may wait for the record: past it a caller may give up and send again.
    let commitDeadline: Duration
    /// When the record's first poll is due.
    let schedule: TrackSchedule
    let metrics: GatewayMetrics
    let logger: Logger

    /// What a tracked send needs to become a record.
    struct Send: Sendable {
        var channel: String
        var serviceId: String
    }

    static let header = "X-Sensgate-Track"
    static let answerHeader = "X-Sensgate-Tracking"
    static let channels: Set<Substring> = ["sms", "alimtalk", "brandmessage"]

    /// The send to track, when `exchange` is a send and tracking is asked for it.
    func send(_ exchange: Exchange) -> Send? {
        guard exchange.head.method == .POST else { return nil }
        // /{channel}/v2/services/{serviceId}/messages
        let segments = exchange.path.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 6, segments[0].isEmpty, Self.channels.contains(segments[1]), segments[2] == "v2", segments[3] == "services",
            segments[5] == "messages"
        else { return nil }
        // Asked by the request, or by the caller's entry (without caller tokens: the `track` setting).
        let asked = exchange.header(Self.header)?.equalsIgnoringASCIICase("true") == true
        let wanted = asked || (exchange.record.caller?.track ?? self.trackByDefault)
        return wanted ? Send(channel: String(segments[1]), serviceId: String(segments[4])) : nil
    }

    /// Commits the record of an accepted send, then hands over SENS's answer with `X-Sensgate-Tracking`.
    /// - Parameters:
    ///   - body: The send's body: a `reserveTime` in it puts the first poll after the scheduled time.
    ///   - completion: Runs once, on any thread.
    func record(_ send: Send, body: ByteBuffer, accepted: Answer, caller: String?, completion: @escaping @Sendable (Answer) -> Void) {
        guard let store = self.store, let requestId = Self.requestId(in: accepted.body) else {
            self.logger.error("a send to track was not recorded", metadata: ["reason": "\(self.store == nil ? "no store" : "no requestId in SENS's answer")"])
            var answer = accepted
            answer.headers.append((Self.answerHeader, "failed"))
            return completion(answer)
        }
        let now = StoreTime.now
        let reserveAt = Self.reserveAt(in: body)
        let request = TrackedRequest(
            requestId: requestId, channel: send.channel, serviceId: send.serviceId, caller: caller ?? "anonymous", acceptedAt: now,
            reserveAt: reserveAt, nextPollAt: self.schedule.firstPoll(acceptedAt: now, reserveAt: reserveAt))
        let logger = self.logger
        let commitDeadline = self.commitDeadline
        // Whichever comes first — the commit, or the deadline — answers; the other finds it done.
        let answered = Mutex(false)
        let finish: @Sendable (String, String?) -> Void = { header, reason in
            guard answered.withLock({ done in defer { done = true }; return !done }) else { return }
            if let reason { logger.error("a send to track was not recorded", metadata: ["requestId": "\(requestId)", "reason": "\(reason)"]) }
            var answer = accepted
            answer.headers.append((Self.answerHeader, header))
            completion(answer)
        }
        Task {
            do {
                try await store.track(request)
                finish(requestId, nil)
            } catch {
                self.metrics.recordStoreError(operation: "track")
                finish("failed", "\(error)")
            }
        }
        Task {
            try? await Task.sleep(for: commitDeadline)
            finish("failed", "not committed within \(commitDeadline)")
        }
    }

    /// A scheduled send's `reserveTime`, when its `reserveTimeZone` is Korea's (SENS's default). A time in another zone
    /// is not read: polling then starts at acceptance and keeps to the schedule, which costs polls, not results.
    static func reserveAt(in body: ByteBuffer) -> StoreTime? {
        guard let parsed = try? JSONValue.parse(body.readableBytesView), case .string(let text)? = parsed["reserveTime"] else { return nil }
        if let zone = parsed["reserveTimeZone"], zone != .string("Asia/Seoul") { return nil }
        return KoreanTime.epochMilliseconds(text)
    }

    /// SENS's `requestId` in a send's answer: visible ASCII, at most 128 bytes.
    static func requestId(in body: ByteBuffer) -> String? {
        guard let parsed = try? JSONValue.parse(body.readableBytesView), case .string(let id)? = parsed["requestId"],
            !id.isEmpty, id.utf8.count <= 128, id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return id
    }
}

extension StoreTime {
    /// Now, in milliseconds since the Unix epoch (the signer's clock: one reading of the wall clock in the process).
    static var now: StoreTime { Signer.nowMilliseconds() }

    /// The time as RFC 3339 UTC with milliseconds, as the log lines write it.
    var rfc3339: String {
        JSONLogLine.timestamp(seconds: time_t(self / 1000), milliseconds: Int(self % 1000))
    }
}
