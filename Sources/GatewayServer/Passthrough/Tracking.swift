import JSON
import Logging
import NIOCore
import NIOHTTP1
import Store
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// Which sends are followed to their final results, and their tracking records (PRODUCT.md §6): a send is a
/// passthrough `POST /{sms,alimtalk,brandmessage}/v2/services/{serviceId}/messages` that SENS accepts (`202`) with a
/// `requestId`; it is tracked when the request says `X-Sensgate-Track: true`, else when its caller's entry says
/// `track: true`, else (without caller tokens) when `track` is set. The record is committed before SENS's answer
/// goes back, which then says `X-Sensgate-Tracking: <requestId>`, or `failed` when the store could not commit it
/// (the send itself stands).
struct Tracking: Sendable {
    /// The store, when one is open.
    let store: (any DeliveryStore)?
    /// Whether sends are tracked without being asked, when no caller tokens are configured.
    let trackByDefault: Bool
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
        let wanted: Bool
        if let asked = exchange.header(Self.header) {
            wanted = asked.lowercased() == "true"
        } else if let caller = exchange.record.caller {
            wanted = caller.track
        } else {
            wanted = self.trackByDefault
        }
        return wanted ? Send(channel: String(segments[1]), serviceId: String(segments[4])) : nil
    }

    /// Commits the record of an accepted send, then hands over SENS's answer with `X-Sensgate-Tracking`.
    /// - Parameter completion: Runs once, on any thread.
    func record(_ send: Send, accepted: Answer, caller: String?, completion: @escaping @Sendable (Answer) -> Void) {
        var answer = accepted
        guard let store = self.store, let requestId = Self.requestId(in: accepted.body) else {
            self.logger.error("a send to track was not recorded", metadata: ["reason": "\(self.store == nil ? "no store" : "no requestId in SENS's answer")"])
            answer.headers.append((Self.answerHeader, "failed"))
            return completion(answer)
        }
        let now = StoreTime.now
        let request = TrackedRequest(
            requestId: requestId, channel: send.channel, serviceId: send.serviceId, caller: caller ?? "anonymous", acceptedAt: now,
            nextPollAt: now + 2_000)
        let logger = self.logger
        Task {
            do {
                try await store.track(request)
                answer.headers.append((Self.answerHeader, requestId))
            } catch {
                logger.error("a send to track was not recorded", metadata: ["requestId": "\(requestId)", "reason": "\(error)"])
                answer.headers.append((Self.answerHeader, "failed"))
            }
            completion(answer)
        }
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
    /// Now, in milliseconds since the Unix epoch.
    static var now: StoreTime {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return StoreTime(now.tv_sec) * 1000 + StoreTime(now.tv_nsec / 1_000_000)
    }
}
