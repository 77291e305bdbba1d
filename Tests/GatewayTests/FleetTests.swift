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
}
