import Foundation
@testable import GatewayServer
import Logging
import PostgresTestServer
import SENSMock
import Store
import Testing

/// Webhooks over real sockets: every final message of a tracked send reaches the caller's receiver, signed, at least
/// once, with one stable `webhook-id`; a receiver that fails is retried; redirects are not followed.
@Suite("Webhooks: events pushed to the caller")
struct WebhookTests {
    /// The receiver's secret in a file, as operators configure it.
    static func secretFile() throws -> String {
        let path = NSTemporaryDirectory() + "sensgate-whsec-\(UUID().uuidString)"
        try (WebhookReceiver.secretText + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func configure(receiverPort: Int, secretFile: String, path: String = "/hooks/sens?team=ops") -> @Sendable (inout GatewayConfiguration) -> Void {
        { configuration in
            TrackerTests.fast(&configuration)
            configuration.webhookSchedule = WebhookSchedule(first: .milliseconds(100), longest: .milliseconds(400), maxAge: .seconds(60))
            configuration.webhook = try? WebhookTarget.load(
                url: "http://127.0.0.1:\(receiverPort)\(path)", secretFile: secretFile, owner: "test", readFile: ConfigurationLoader.readTextFile)
        }
    }

    static func withReceiver(_ body: (WebhookReceiver, String) async throws -> Void) async throws {
        let receiver = WebhookReceiver()
        let file = try Self.secretFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await body(receiver, file)
        await receiver.stop()
    }

    @Test("a tracked SMS to two recipients: one verified webhook per recipient, with the unified result")
    func delivered() async throws {
        try await Self.withReceiver { receiver, file in
            let port = try await receiver.start()
            try await TestGateway.run(deliveryDelay: .milliseconds(400), configure: Self.configure(receiverPort: port, secretFile: file)) { gw in
                let requestId = try await TrackerTests.send(gw, to: ["01012345678", "01000003018"])
                try await waitUntil { receiver.deliveries.count >= 2 }
                let deliveries = receiver.deliveries
                #expect(deliveries.count == 2)
                #expect(deliveries.allSatisfy { $0.signatureValid })
                #expect(deliveries.allSatisfy { $0.target == "/hooks/sens?team=ops" })
                #expect(Set(deliveries.compactMap(\.id)).count == 2)
                var classes: [String] = []
                for delivery in deliveries {
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])
                    let data = try #require(body["data"] as? [String: Any])
                    #expect(data["requestId"] as? String == requestId)
                    classes.append(try #require(data["class"] as? String))
                }
                #expect(classes.sorted() == ["permanent", "success"])
                try await waitUntil { try await gw.store.events(state: .delivered, caller: nil, limit: 10).count == 2 }
                // §6's metrics: the final outcomes, the deliveries, and the store's gauges (counted every few seconds).
                try await waitUntil {
                    let metrics = try await gw.send("GET", "/metrics").text
                    return metrics.contains(#"sensgate_tracked_requests{state="completed"} 1"#) && metrics.contains("sensgate_webhook_backlog 0")
                }
                let metrics = try await gw.send("GET", "/metrics").text
                #expect(metrics.contains(#"sensgate_webhook_deliveries_total{outcome="delivered"} 2"#))
                #expect(metrics.contains(#"sensgate_deliveries_total{channel="sms",namespace="sms.report",code="3018",class="permanent"} 1"#))
                #expect(metrics.contains(#"sensgate_delivery_seconds_count{channel="sms"} 2"#))
            }
        }
    }

    @Test("a receiver that answers 500 twice gets the event a third time, with the same webhook-id, and then it is delivered")
    func retried() async throws {
        try await Self.withReceiver { receiver, file in
            let port = try await receiver.start()
            receiver.answer([500, 500])
            try await TestGateway.run(deliveryDelay: .milliseconds(200), configure: Self.configure(receiverPort: port, secretFile: file)) { gw in
                _ = try await TrackerTests.send(gw, to: ["01012345678"])
                try await waitUntil { try await gw.store.events(state: .delivered, caller: nil, limit: 10).count == 1 }
                let deliveries = receiver.deliveries
                #expect(deliveries.count == 3)
                #expect(Set(deliveries.compactMap(\.id)).count == 1)
                #expect(deliveries.allSatisfy { $0.signatureValid })
                #expect(Set(deliveries.map(\.text)).count == 1)  // the body is the event's, byte for byte
                #expect(try await gw.store.events(state: .delivered, caller: nil, limit: 10).first?.attempts == 3)
            }
        }
    }

    @Test("a redirect is not followed: it is a failed attempt; a receiver failing past webhook-max-age leaves the event failed")
    func redirectAndGiveUp() async throws {
        try await Self.withReceiver { receiver, file in
            let port = try await receiver.start()
            receiver.answer(Array(repeating: 302, count: 100), headers: [("location", "http://127.0.0.1:1/elsewhere")])
            let configure = Self.configure(receiverPort: port, secretFile: file)
            try await TestGateway.run(deliveryDelay: .milliseconds(100), configure: {
                configure(&$0)
                $0.webhookSchedule = WebhookSchedule(first: .milliseconds(100), longest: .milliseconds(200), maxAge: .seconds(1))
            }) { gw in
                _ = try await TrackerTests.send(gw, to: ["01012345678"])
                try await waitUntil { try await gw.store.events(state: .failed, caller: nil, limit: 10).count == 1 }
                #expect(!receiver.deliveries.isEmpty)
                #expect(receiver.deliveries.allSatisfy { $0.target == "/hooks/sens?team=ops" })
                #expect(gw.logs.all.contains { $0.contains("a webhook event failed") && $0.contains("302") })
                // The query of the receiver's URL (it may hold a token) is not logged.
                #expect(!gw.logs.all.contains { $0.contains("team=ops") })
            }
        }
    }

    @Test("GET /v1/events?state=failed lists what could not be delivered; POST /v1/events/{id}:redeliver queues it again")
    func failedAndRedelivered() async throws {
        try await Self.withReceiver { receiver, file in
            let port = try await receiver.start()
            receiver.answer(Array(repeating: 503, count: 1000))
            let configure = Self.configure(receiverPort: port, secretFile: file)
            try await TestGateway.run(deliveryDelay: .milliseconds(100), configure: {
                configure(&$0)
                $0.webhookSchedule = WebhookSchedule(first: .milliseconds(100), longest: .milliseconds(200), maxAge: .seconds(1))
            }) { gw in
                _ = try await TrackerTests.send(gw, to: ["01012345678"])
                try await waitUntil { try await gw.store.events(state: .failed, caller: nil, limit: 10).count == 1 }
                let listed = try await gw.send("GET", "/v1/events?state=failed")
                #expect(listed.status == 200)
                let events = try #require(try listed.json()["events"] as? [[String: Any]])
                #expect(events.count == 1)
                let event = try #require(events.first)
                let id = try #require(event["id"] as? String)
                #expect(event["state"] as? String == "failed")
                #expect((event["attempts"] as? Int ?? 0) >= 1)
                #expect((event["event"] as? [String: Any])?["type"] as? String == "delivery.completed")
                receiver.recover()
                let before = receiver.deliveries.count
                let queued = try await gw.send("POST", "/v1/events/\(id):redeliver")
                #expect(queued.status == 202)
                try await waitUntil { try await gw.store.events(state: .delivered, caller: nil, limit: 10).count == 1 }
                #expect(receiver.deliveries.count == before + 1)
                #expect(receiver.deliveries.last?.id == id)
                // Only a failed event can be queued again; a state that does not exist is refused.
                #expect(try await gw.send("POST", "/v1/events/\(id):redeliver").status == 404)
                #expect(try await gw.send("GET", "/v1/events?state=lost").status == 400)
                #expect(try await gw.send("GET", "/v1/events/\(id):redeliver").status == 405)
                let delivered = try await gw.send("GET", "/v1/events?state=delivered")
                #expect((try delivered.json()["events"] as? [[String: Any]])?.count == 1)
            }
        }
    }

    @Test("bad webhook settings stop the configuration with one line naming the setting, never the secret")
    func badSettings() throws {
        let file = try Self.secretFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        let read = ConfigurationLoader.readTextFile
        for url in ["ftp://x/hook", "http:///hook", "http://user:pw@host/hook", "http://host/hook#frag", "http://host/ho ok", "hook"] {
            #expect(throws: ConfigurationError.self) { try WebhookTarget.load(url: url, secretFile: file, owner: "webhook-url", readFile: read) }
        }
        #expect(throws: ConfigurationError.self) { try WebhookTarget.load(url: "http://h/", secretFile: "/nonexistent/whsec", owner: "webhook-url", readFile: read) }
        let bad = NSTemporaryDirectory() + "sensgate-bad-whsec-\(UUID().uuidString)"
        try "not-a-secret-value".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        do {
            _ = try WebhookTarget.load(url: "https://h.example/hook", secretFile: bad, owner: "webhook-url", readFile: read)
            Issue.record("a malformed secret was accepted")
        } catch {
            #expect(error.message.contains(bad))
            #expect(!error.message.contains("not-a-secret-value"))
        }
        let target = try WebhookTarget.load(url: "HTTPS://h.example:8443?k=1", secretFile: file, owner: "webhook-url", readFile: read)
        #expect(target.origin == "https://h.example:8443")
        #expect(target.target == "/?k=1")
        #expect(target.description == "https://h.example:8443/")
    }
}

/// An event whose caller this process has no webhook for: alone on its store, failed at once (redeliverable once one is
/// configured); on a store a fleet shares, left unattempted for a replica that has it (an outside test saw one
/// replica without the setting fail the whole fleet's events).
@Suite("Webhooks: an event this replica cannot deliver")
struct WebhookWithoutTargetTests {
    @Test("alone: failed at once; on a shared PostgreSQL store: left pending, unattempted, for another replica")
    func leftOrFailed() async throws {
        let directory = NSTemporaryDirectory() + "sensgate-nowebhook-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let alone = try await SQLiteStore.open(directory: directory, logger: Logger(label: "test"))
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let shared = try await PostgresStore.open(
            PostgresLocation(user: server.user, host: "127.0.0.1", port: server.port, database: database, tls: .disable),
            password: PostgresTestServer.password, poolSize: 2, logger: Logger(label: "test"))
        for store in [alone, shared] as [any DeliveryStore] {
            let event = try await Self.event(in: store)
            let sender = WebhookSender(
                store: store, webhooks: WebhookDirectory(callers: CallerStore(nil), global: nil), schedule: WebhookSchedule(),
                metrics: GatewayMetrics(), logger: Logger(label: "test"))
            await sender.deliver(event)
            let failed = try await store.events(state: .failed, caller: nil, limit: 10).map(\.id)
            let pending = try await store.events(state: .pending, caller: nil, limit: 10)
            if store.isShared {
                #expect(failed.isEmpty)
                #expect(pending.map(\.id) == [event.id])
                #expect(pending.first?.attempts == 0)
            } else {
                #expect(failed == [event.id])
            }
            await store.close()
        }
    }

    /// A tracked request's message made final, and its event claimed as a sender would.
    static func event(in store: any DeliveryStore) async throws -> StoredEvent {
        let now = StoreTime.now
        try await store.track(
            TrackedRequest(requestId: "R-1", channel: "sms", serviceId: "ncp:sms:kr:1:x", caller: "orders", acceptedAt: now, nextPollAt: now))
        let claimed = try #require(try await store.claimDueRequests(now: now, limit: 1, lease: 10_000).first)
        let done = StoredResult(messageId: "m-1", isFinal: true, json: "{}")
        let outcome = PollOutcome(results: [done], state: .completed, nextPollAt: now + 10_000) { _ in #"{"type":"delivery.completed"}"# }
        #expect(try await store.recordPoll(claimed, outcome: outcome, now: now))
        return try #require(try await store.claimDueEvents(now: now, limit: 1, lease: 10_000).first)
    }
}
