import DeliveryResults
import JSON
import Logging
import NIOCore
import NIOHTTP1
import Signing
import Store
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// Which sends are followed to their final results, and their tracking records (PRODUCT.md §6): a send is a
/// passthrough `POST /{sms,alimtalk,brandmessage}/v2/services/{serviceId}/messages` that SENS accepts (`202`) with a
/// `requestId`; it is tracked when the request says `X-Sensgate-Track: true` or its caller's entry says
/// `track: true` (without caller tokens: when `track` is set). The record is committed before SENS's answer goes
/// back, which then says `X-Sensgate-Tracking: <requestId>`, or `failed` when the store could not commit it within
/// ``Passthrough/commitDeadline`` (the send itself stands; a late commit still lands: recording is idempotent).
struct Tracking: Sendable {
    /// The store, when one is open.
    let store: (any DeliveryStore)?
    /// Whether sends are tracked without being asked, when no caller tokens are configured.
    let trackByDefault: Bool
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

    /// The record of an accepted send, committed by ``Passthrough`` before SENS's answer goes back; `nil` (logged)
    /// when there is no store or SENS's answer names no `requestId`.
    /// - Parameter body: The send's body: a `reserveTime` in it puts the first poll after the scheduled time.
    func request(for send: Send, body: ByteBuffer, accepted: Answer, caller: String?) -> TrackedRequest? {
        guard self.store != nil, let requestId = Self.requestId(in: accepted.body) else {
            self.logger.error("a send to track was not recorded", metadata: ["reason": "\(self.store == nil ? "no store" : "no requestId in SENS's answer")"])
            return nil
        }
        let now = StoreTime.now
        let reserveAt = Self.reserveAt(in: body)
        return TrackedRequest(
            requestId: requestId, channel: send.channel, serviceId: send.serviceId, caller: caller ?? "anonymous", acceptedAt: now,
            reserveAt: reserveAt, nextPollAt: self.schedule.firstPoll(acceptedAt: now, reserveAt: reserveAt))
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
