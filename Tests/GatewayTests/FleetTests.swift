import Foundation
import PostgresTestServer
import SENSMock
import Testing

/// A fleet (PRODUCT.md §8): three real `sensgate serve` processes on one PostgreSQL database and one SENS account.
/// Tracked sends spread across them; one replica is killed (`kill -9`) mid-way; the others take over its work and
/// every event arrives.
@Suite("Fleet: replicas on one PostgreSQL store")
struct FleetTests {
    @Test("three replicas, tracked sends spread across them, one killed mid-way: every event arrives, each id verified", .timeLimit(.minutes(4)))
    func killOneReplica() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let receiver = WebhookReceiver()
        let receiverPort = try await receiver.start()
        let secretFile = try WebhookTests.secretFile()
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let environment = [
            "SENSGATE_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=disable",
            "PGPASSWORD": PostgresTestServer.password,
            "SENSGATE_WEBHOOK_URL": "http://127.0.0.1:\(receiverPort)/hook", "SENSGATE_WEBHOOK_SECRET_FILE": secretFile,
            "SENSGATE_SMS_SERVICE_ID": Fixtures.smsServiceID,
        ]
        let a = try await ServeProcess.start(environment: environment, deliveryDelay: .milliseconds(500))
        defer { a.terminate() }
        let b = try await ServeProcess.start(environment: environment, alongside: a)
        defer { b.terminate() }
        let c = try await ServeProcess.start(environment: environment, alongside: a)
        defer { c.terminate() }
        let replicas = [a, b, c]

        // Twelve tracked sends, one message each, round robin; then, once the first events have arrived (the three
        // trackers are polling, each holding claims), the first replica is killed: its claims lapse and the others
        // take them over, and six more sends go to the two left.
        var requests: [String] = []
        for index in 0..<12 {
            requests.append(try await RestartTests.trackedSend(port: replicas[index % 3].port, to: ["0101234\(String(format: "%04d", index))"]))
        }
        try await waitUntil(timeout: .seconds(60)) { receiver.deliveredIds.count >= 3 }
        a.kill()
        let killedAt = receiver.deliveredIds.count
        for index in 12..<18 {
            requests.append(try await RestartTests.trackedSend(port: replicas[1 + index % 2].port, to: ["0101234\(String(format: "%04d", index))"]))
        }
        try await waitUntil(timeout: .seconds(150)) { receiver.deliveredIds.count >= 18 }
        let deliveries = receiver.deliveries
        #expect(deliveries.allSatisfy { $0.signatureValid })
        #expect(receiver.deliveredIds.count == 18)
        var requestsSeen: Set<String> = []
        for delivery in deliveries {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])
            let data = try #require(body["data"] as? [String: Any])
            requestsSeen.insert(data["requestId"] as? String ?? "")
        }
        #expect(requestsSeen == Set(requests))
        // At least once: a duplicate is one the dead replica had in flight, never more than its batch.
        let duplicates = deliveries.count - receiver.deliveredIds.count
        #expect(duplicates <= 8, "\(duplicates) duplicate deliveries")
        print("fleet: \(receiver.deliveredIds.count - killedAt) events delivered after the kill (\(killedAt) before), \(duplicates) duplicates")
        await b.stop()
        await c.stop()
        await receiver.stop()
    }

    @Test(
        "three replicas under load share one SENS budget: no 5 s window at the mock over the fleet rate by more than 10%; one killed, the two left take up its share",
        .tags(.timing), .timeLimit(.minutes(3)))
    func sharedBudget() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        // The fleet's budget: 20 calls a second, a burst of 3 (a token bucket lets its burst through on top of its
        // rate; over 5 s that is 3 calls in 100, within the 10%).
        let rate = 20.0
        let environment = [
            "SENSGATE_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=disable",
            "PGPASSWORD": PostgresTestServer.password, "SENSGATE_UPSTREAM_RATE": "20", "SENSGATE_UPSTREAM_BURST": "3",
        ]
        try await LoadGate.scope {
            let a = try await ServeProcess.start(environment: environment)
            defer { a.terminate() }
            let b = try await ServeProcess.start(environment: environment, alongside: a)
            defer { b.terminate() }
            let c = try await ServeProcess.start(environment: environment, alongside: a)
            defer { c.terminate() }
            for replica in [a, b, c] { try await Self.waitForFleet(of: 3, at: replica) }

            // Ten seconds of lookups far over the budget (eight clients per replica), then one replica killed; once
            // the two left have seen it gone, six more seconds on them.
            a.mock.clearReceived()
            let start = ContinuousClock.now
            let first = try await Self.load([a, b, c], for: .seconds(10))
            c.kill()
            for replica in [a, b] { try await Self.waitForFleet(of: 2, at: replica) }
            let twoLeft = ContinuousClock.now
            let second = try await Self.load([a, b], for: .seconds(6))

            let arrivals = a.mock.receivedRequests.filter { $0.target.contains("/messages/budget-") }.map(\.receivedAt).sorted()
            // The busiest 5 s window, wherever it starts (each arrival starts one).
            var busiest = 0
            var end = 0
            for (index, arrival) in arrivals.enumerated() {
                while end < arrivals.count && arrivals[end] < arrival + .seconds(5) { end += 1 }
                busiest = max(busiest, end - index)
            }
            let allowed = rate * 5
            let overshoot = (Double(busiest) / allowed - 1) * 100
            print("fleet budget: \(arrivals.count) calls reached the mock, busiest 5 s window \(busiest) (budget \(Int(allowed)), \(String(format: "%+.1f", overshoot))%); refused by the gateways \(first.limited + second.limited), answered \(first.answered + second.answered)")
            #expect(Double(busiest) <= allowed * 1.1, "busiest 5 s window: \(busiest) calls, the budget allows \(allowed)")
            // The budget is spent, not starved: with three replicas over their first ten seconds, and with the two
            // left over the last five (a share the dead one kept would leave them at two thirds).
            let inFirst = arrivals.filter { $0 < start + .seconds(10) }.count
            #expect(Double(inFirst) >= rate * 10 * 0.8, "\(inFirst) calls in the first 10 s")
            let lastFive = arrivals.filter { $0 >= twoLeft + .seconds(1) && $0 < twoLeft + .seconds(6) }.count
            #expect(Double(lastFive) >= rate * 5 * 0.8, "\(lastFive) calls in the two replicas' last 5 s")
            await a.stop()
            await b.stop()
        }
    }

    /// Waits until a replica's `/metrics` says the fleet has `count` replicas.
    static func waitForFleet(of count: Int, at replica: ServeProcess) async throws {
        try await waitUntil(timeout: .seconds(30)) {
            let metrics = try? await RawHTTP.exchange(port: replica.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let line = metrics?.text.split(separator: "\n").first { $0.hasPrefix("sensgate_fleet_replicas ") }
            return line.flatMap { Double($0.dropFirst("sensgate_fleet_replicas ".count)) } == Double(count)
        }
    }

    /// Lookups through each replica, eight clients each, as fast as they are answered (a client refused with `429`
    /// pauses 20 ms, so the refusals do not take the machine), for `duration`.
    static func load(_ replicas: [ServeProcess], for duration: Duration) async throws -> (answered: Int, limited: Int) {
        let deadline = ContinuousClock.now + duration
        return try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for (index, replica) in replicas.enumerated() {
                for client in 0..<8 {
                    group.addTask {
                        var (answered, limited, sent) = (0, 0, 0)
                        while ContinuousClock.now < deadline {
                            sent += 1
                            let response = try await RawHTTP.exchange(
                                port: replica.port,
                                "GET /sms/v2/services/\(Fixtures.smsServiceID)/messages/budget-\(index)-\(client)-\(sent) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                            if response.status == 429 {
                                limited += 1
                                try await Task.sleep(for: .milliseconds(20))
                            } else {
                                answered += 1
                            }
                        }
                        return (answered, limited)
                    }
                }
            }
            var total = (answered: 0, limited: 0)
            for try await (answered, limited) in group { total = (total.answered + answered, total.limited + limited) }
            return total
        }
    }
}
