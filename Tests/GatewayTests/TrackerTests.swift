import DeliveryResults
import Foundation
@testable import GatewayServer
import SENSMock
import Store
import Synchronization
import Testing

/// Waits for an async condition (a store read), polling; never a guessed delay.
func waitUntil(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("condition not met within \(timeout)")
}

/// The tracker over real sockets: a tracked send is followed at the mock until every message is final, each final
/// message gets its event in the outbox, and polls that fail never lose the record.
@Suite("Tracker: sends followed to their final results")
struct TrackerTests {
    /// A webhook nobody listens on (the discard port refuses): events are made, and stay undelivered.
    static let nowhere: WebhookTarget? = {
        let path = NSTemporaryDirectory() + "sensgate-whsec-nowhere-\(UUID().uuidString)"
        try? (WebhookReceiver.secretText + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return try? WebhookTarget.load(url: "http://127.0.0.1:9/hook", secretFile: path, owner: "test", readFile: ConfigurationLoader.readTextFile)
    }()

    static func fast(_ configuration: inout GatewayConfiguration) {
        configuration.trackSchedule = TrackSchedule(first: .milliseconds(100), longest: .milliseconds(400), maxAge: .seconds(3600))
        configuration.trackRate = 1000
        configuration.webhook = Self.nowhere
    }

    static func send(_ gw: TestGateway, channel: String = "sms", serviceId: String = Fixtures.smsServiceID, to: [String], failover: Bool = false)
        async throws -> String
    {
        let body = MockDeliveryTests.send(channel, serviceId: serviceId, recipients: to, failover: failover)
        let response = try await RawHTTP.exchange(
            port: gw.port,
            "POST /\(channel)/v2/services/\(serviceId)/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Sensgate-Track: true\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        #expect(response.status == 202)
        let requestId = try #require(try response.json()["requestId"] as? String)
        #expect(response.header("x-sensgate-tracking") == requestId)
        return requestId
    }

    /// Every event in the outbox, whatever became of it (the webhook sender runs; without a webhook it fails them).
    static func events(_ gw: TestGateway) async throws -> [StoredEvent] {
        // Read in the order events move (pending, then delivered or failed) and counted once each: an event that moves
        // between two reads is seen twice, never missed.
        var byId: [String: StoredEvent] = [:]
        for state in [StoredEvent.State.pending, .delivered, .failed] {
            for event in try await gw.store.events(state: state, caller: nil, limit: 100) { byId[event.id] = event }
        }
        return Array(byId.values)
    }

    static func closed(_ gw: TestGateway, _ requestId: String) async throws -> (TrackedRequest, [StoredResult]) {
        try await waitUntil { try await gw.store.request(id: requestId)?.0.state != .tracking }
        return try #require(try await gw.store.request(id: requestId))
    }

    @Test("an SMS to two recipients: both followed to their outcome, one event each, in the unified schema")
    func sms() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(600), configure: Self.fast) { gw in
            let requestId = try await Self.send(gw, to: ["01012345678", "01000003018"])
            let (request, results) = try await Self.closed(gw, requestId)
            #expect(request.state == .completed)
            #expect(results.count == 2)
            #expect(results.allSatisfy { $0.isFinal })
            let events = try await Self.events(gw)
            #expect(events.count == 2)
            var classes: [String] = []
            for event in events {
                let body = try #require(try JSONSerialization.jsonObject(with: Data(event.body.utf8)) as? [String: Any])
                #expect(body["type"] as? String == "delivery.completed")
                #expect(body["timestamp"] is String)
                let data = try #require(body["data"] as? [String: Any])
                #expect(data["schema"] as? String == "sensgate.delivery-result.v1")
                #expect(data["requestId"] as? String == requestId)
                classes.append(try #require(data["class"] as? String))
            }
            #expect(classes.sorted() == ["permanent", "success"])
            // Calls to SENS: one list to learn the ids, then each open message by id until it is final.
            let polls = gw.mock.receivedRequests.filter { $0.method == "GET" }
            #expect(polls.count >= 3)
            #expect(polls.allSatisfy { $0.signatureValid })
        }
    }

    @Test("an AlimTalk that falls back to SMS: one list call per poll, delivered via sms")
    func alimTalkFailover() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(600), configure: Self.fast) { gw in
            let requestId = try await Self.send(gw, channel: "alimtalk", serviceId: Fixtures.alimTalkServiceID, to: ["01000003019"], failover: true)
            let (request, results) = try await Self.closed(gw, requestId)
            #expect(request.state == .completed)
            let result = try #require(results.first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.json.utf8)) as? [String: Any])
            #expect(json["deliveredVia"] as? String == "sms")
            #expect(json["class"] as? String == "success")
            let polls = gw.mock.receivedRequests.filter { $0.method == "GET" }
            #expect(polls.allSatisfy { $0.target.contains("?requestId=") })
            #expect(polls.count == request.polls)
        }
    }

    @Test("a caller without a webhook: its sends are followed to the end, and no event is made")
    func noWebhookNoEvents() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(200), configure: {
            Self.fast(&$0)
            $0.webhook = nil
        }) { gw in
            let requestId = try await Self.send(gw, to: ["01012345678"])
            let (request, results) = try await Self.closed(gw, requestId)
            #expect(request.state == .completed)
            #expect(results.count == 1)
            #expect(try await Self.events(gw).isEmpty)
        }
    }

    @Test("GET /v1/requests/{id}?wait= answers as soon as the request completes, with every result")
    func waitForCompletion() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(500), configure: Self.fast) { gw in
            let requestId = try await Self.send(gw, to: ["01012345678", "01000002003"])
            let started = ContinuousClock.now
            let answer = try await gw.send("GET", "/v1/requests/\(requestId)?wait=50")
            let waited = ContinuousClock.now - started
            #expect(answer.status == 200)
            let json = try answer.json()
            #expect(json["state"] as? String == "completed")
            #expect((json["results"] as? [[String: Any]])?.count == 2)
            #expect(waited < .seconds(40))  // answered by the completion, not by the end of the wait
            let immediate = try await gw.send("GET", "/v1/requests/\(requestId)?wait=0")
            #expect(try immediate.json()["state"] as? String == "completed")
            #expect(try await gw.send("GET", "/v1/requests/\(requestId)?wait=61").status == 400)
            #expect(try await gw.send("GET", "/v1/requests/\(requestId)?wait=soon").status == 400)
        }
    }

    @Test("GET /v1/results/{channel}/{id}?wait= answers when the message completes; waiters on one message share its polls")
    func waitForMessage() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(1500), configure: Self.fast) { gw in
            let sent = try await gw.send(
                "POST", "/sms/v2/services/\(Fixtures.smsServiceID)/messages", headers: [("content-type", "application/json")],
                body: MockDeliveryTests.send("sms", serviceId: Fixtures.smsServiceID, recipients: ["01012345678"]))
            let requestId = try #require(try sent.json()["requestId"] as? String)
            let messageId = "mock-sms-\(requestId.split(separator: "-").last ?? "")-1"
            gw.mock.clearReceived()
            let waiters = 20
            let classes = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<waiters {
                    group.addTask {
                        let answer = try await RawHTTP.exchange(
                            port: gw.port, "GET /v1/results/sms/\(messageId)?wait=30 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            timeout: .seconds(40))
                        return try answer.json()["class"] as? String
                    }
                }
                var classes: [String?] = []
                for try await value in group { classes.append(value) }
                return classes
            }
            #expect(classes.count == waiters)
            #expect(classes.allSatisfy { $0 == "success" })
            // One look each at first (joined where they overlap), then one per whole-second tick for all of them.
            let looks = gw.mock.receivedRequests.filter { $0.target.hasSuffix("/\(messageId)") }.count
            #expect(looks < 2 * waiters)
            for bad in ["61", "%2B5", "abc", "-1"] {
                #expect(try await gw.send("GET", "/v1/results/sms/\(messageId)?wait=\(bad)").status == 400)
            }
        }
    }

    @Test("graceful shutdown ends ?wait= at once: the waiter gets what is known, the server does not wait out the wait")
    func shutdownEndsWaits() async throws {
        // From the end of the test's traffic (then the gateway shuts down) — not from before the gateway started,
        // which may wait for tests that run alone.
        let shutdownStarted = Mutex(ContinuousClock.now)
        let (waiters, continuation) = AsyncStream.makeStream(of: Task<TestResponse?, Never>.self)
        try await TestGateway.run(deliveryDelay: .milliseconds(100), configure: Self.fast) { gw in
            let requestId = try await Self.send(gw, to: ["01011119999"])  // never completes
            let port = gw.port
            continuation.yield(Task {
                try? await RawHTTP.exchange(
                    port: port, "GET /v1/requests/\(requestId)?wait=60 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(70))
            })
            continuation.finish()
            try await waitUntil { try await gw.send("GET", "/metrics").text.contains("sensgate_http_requests_in_flight 2") }
            shutdownStarted.withLock { $0 = .now }
        }
        #expect(ContinuousClock.now - shutdownStarted.withLock { $0 } < .seconds(45))
        var iterator = waiters.makeAsyncIterator()
        let waiter = try #require(await iterator.next())
        let response = try #require(await waiter.value)
        #expect(response.status == 200)
        #expect(try response.json()["state"] as? String == "tracking")
    }

    @Test("a store file removed under the running gateway: /readyz says the store is unavailable, traffic still flows")
    func storeGone() async throws {
        try await TestGateway.run(configure: Self.fast) { gw in
            #expect(try await gw.send("GET", "/readyz").text == #"{"status":"ready"}"#)
            try FileManager.default.removeItem(atPath: gw.dataDir + "/sensgate.sqlite")
            try await waitUntil { try await gw.send("GET", "/readyz").text.contains(#""store":"unavailable""#) }
            #expect(try await gw.send("GET", "/readyz").status == 200)
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status == 200)
            #expect(try await gw.send("GET", "/metrics").text.contains(#"sensgate_store_errors_total{operation="read"}"#))
        }
    }

    @Test("SENS failing polls (503, resets) delays the result but never loses the record")
    func failingPolls() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(300), configure: Self.fast) { gw in
            let requestId = try await Self.send(gw, to: ["01012345678"])
            gw.mock.injectFault(.status(503), count: 3)
            gw.mock.injectFault(.reset, count: 1)
            let (request, results) = try await Self.closed(gw, requestId)
            #expect(request.state == .completed)
            #expect(results.count == 1)
            #expect(try await Self.events(gw).count == 1)
        }
    }

    @Test("a message that never completes is closed after track-max-age as expired, class unknown, with its event")
    func expiry() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(100), configure: {
            $0.trackSchedule = TrackSchedule(first: .milliseconds(100), longest: .milliseconds(200), maxAge: .milliseconds(1500))
            $0.webhook = Self.nowhere
            $0.trackRate = 1000
        }) { gw in
            let requestId = try await Self.send(gw, channel: "brandmessage", serviceId: Fixtures.brandMessageServiceID, to: ["01011119999"])
            let (request, results) = try await Self.closed(gw, requestId)
            #expect(request.state == .expired)
            let first = try #require(results.first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(first.json.utf8)) as? [String: Any])
            #expect(json["status"] as? String == "expired")
            #expect(json["class"] as? String == "unknown")
            #expect(try await Self.events(gw).count == 1)
        }
    }
}

/// The poll decision and the schedule: pure, no sockets.
@Suite("Tracker: schedule and poll decisions")
struct PollDecisionTests {
    @Test("the schedule: 2 s after acceptance or reserveTime, doubling to 5 minutes; expired after max-age")
    func schedule() {
        let schedule = TrackSchedule()
        #expect(schedule.firstPoll(acceptedAt: 1_000, reserveAt: nil) == 3_000)
        #expect(schedule.firstPoll(acceptedAt: 1_000, reserveAt: 60_000) == 62_000)
        #expect(schedule.nextPoll(after: 1, now: 0) == 4_000)
        #expect(schedule.nextPoll(after: 2, now: 0) == 8_000)
        #expect(schedule.nextPoll(after: 7, now: 0) == 256_000)
        #expect(schedule.nextPoll(after: 8, now: 0) == 300_000)
        #expect(schedule.nextPoll(after: 1_000, now: 0) == 300_000)
        #expect(!schedule.isExpired(acceptedAt: 0, reserveAt: nil, now: 259_199_999))
        #expect(schedule.isExpired(acceptedAt: 0, reserveAt: nil, now: 259_200_000))
        #expect(!schedule.isExpired(acceptedAt: 0, reserveAt: 100_000, now: 259_200_000))
    }

    static func result(_ id: String, status: String, code: String? = nil) throws -> DeliveryResult {
        let codePart = code.map { #","statusCode":"\#($0)","statusName":"x""# } ?? ""
        let body = #"{"messages":[{"messageId":"\#(id)","requestId":"R","status":"\#(status)"\#(codePart)}]}"#
        return try #require(try Normalizer().normalize(channel: .sms, serviceId: "s", body: Array(body.utf8)).first)
    }

    static let request = TrackedRequest(requestId: "R", channel: "sms", serviceId: "s", caller: "a", acceptedAt: 0, nextPollAt: 0, polls: 2)

    @Test("a final message is never rewritten; the request completes when every known message is final")
    func decide() throws {
        let stored = [StoredResult(messageId: "a", isFinal: true, json: "{}"), StoredResult(messageId: "b", isFinal: false, json: "{}")]
        let open = PollDecision.decide(
            Self.request, stored: stored, fresh: [try Self.result("a", status: "COMPLETED", code: "3018"), try Self.result("b", status: "PROCESSING")],
            now: 10_000, schedule: TrackSchedule())
        #expect(open.results.map(\.messageId) == ["b"])
        #expect(open.state == .tracking)
        #expect(open.nextPollAt == 10_000 + 16_000)
        #expect(open.newlyFinal.isEmpty)
        let done = PollDecision.decide(Self.request, stored: stored, fresh: [try Self.result("b", status: "COMPLETED", code: "0")], now: 10_000, schedule: TrackSchedule())
        #expect(done.state == .completed)
        #expect(done.newlyFinal.map(\.messageId) == ["b"])
        // Nothing read (every call failed): nothing written, still tracking.
        let failed = PollDecision.decide(Self.request, stored: stored, fresh: [], now: 10_000, schedule: TrackSchedule())
        #expect(failed.results.isEmpty)
        #expect(failed.state == .tracking)
        // No message known yet: tracking, until max-age closes it with nothing to report.
        let unknown = PollDecision.decide(Self.request, stored: [], fresh: [], now: 10_000, schedule: TrackSchedule())
        #expect(unknown.state == .tracking)
        let gaveUp = PollDecision.decide(Self.request, stored: [], fresh: [], now: 259_200_000, schedule: TrackSchedule())
        #expect(gaveUp.state == .expired)
        #expect(gaveUp.results.isEmpty)
    }

    @Test("expiry closes each open message: the result just read marked expired, or one never read")
    func expire() throws {
        let stored = [StoredResult(messageId: "a", isFinal: false, json: "{}"), StoredResult(messageId: "b", isFinal: false, json: "{}")]
        let decision = PollDecision.decide(
            Self.request, stored: stored, fresh: [try Self.result("a", status: "PROCESSING")], now: 259_200_000, schedule: TrackSchedule())
        #expect(decision.state == .expired)
        #expect(decision.results.map(\.messageId) == ["a", "b"])
        #expect(decision.results.allSatisfy { $0.isFinal })
        for result in decision.results {
            #expect(result.json.contains(#""status":"expired""#))
            #expect(result.json.contains(#""class":"unknown""#))
        }
    }
}
