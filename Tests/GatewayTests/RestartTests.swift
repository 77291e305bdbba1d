import Foundation
import SENSMock
import Testing

/// `kill -9` loses nothing (PRODUCT.md §6): a real `sensgate serve` is killed while its tracked sends are open and
/// their events undelivered; a new process on the same data-dir resumes both, and every event arrives.
@Suite("Restarts: kill -9 loses no tracked send and no event")
struct RestartTests {
    static func trackedSend(port: Int, to recipients: [String]) async throws -> String {
        let body = MockDeliveryTests.send("sms", serviceId: Fixtures.smsServiceID, recipients: recipients)
        let response = try await RawHTTP.exchange(
            port: port,
            "POST /sms/v2/services/\(Fixtures.smsServiceID)/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Sensgate-Track: true\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        #expect(response.status == 202)
        let requestId = try #require(try response.json()["requestId"] as? String)
        #expect(response.header("x-sensgate-tracking") == requestId)
        return requestId
    }

    @Test("kill -9 right after the sends, and again while the receiver fails: a restart delivers every event, each id once verified")
    func killAndResume() async throws {
        let receiver = WebhookReceiver()
        let receiverPort = try await receiver.start()
        let secretFile = try WebhookTests.secretFile()
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let environment = [
            "SENSGATE_WEBHOOK_URL": "http://127.0.0.1:\(receiverPort)/hook", "SENSGATE_WEBHOOK_SECRET_FILE": secretFile,
            "SENSGATE_SMS_SERVICE_ID": Fixtures.smsServiceID,
        ]
        // First life: three sends (four messages) recorded, then killed, most likely before the first poll (2 s).
        let first = try await ServeProcess.start(environment: environment, deliveryDelay: .milliseconds(500))
        var requests: [String] = []
        requests.append(try await Self.trackedSend(port: first.port, to: ["01012345678"]))
        requests.append(try await Self.trackedSend(port: first.port, to: ["01000003018", "01000002003"]))
        requests.append(try await Self.trackedSend(port: first.port, to: ["01055556666"]))
        // (On a loaded machine a first poll may already have run: whatever it did is in the store.)
        first.kill()

        // Second life: the tracker resumes; the receiver fails the first two deliveries; killed once one has failed.
        receiver.answer([503, 503])
        let second = try await ServeProcess.start(environment: environment, restarting: first)
        try await waitUntil(timeout: .seconds(60)) { receiver.deliveries.count >= 1 }
        second.kill()

        // Third life: every event arrives, whatever was pending, claimed or in flight when the second one died.
        let third = try await ServeProcess.start(environment: environment, restarting: second)
        defer { Task { await third.stop(); await receiver.stop() } }
        try await waitUntil(timeout: .seconds(90)) { receiver.deliveredIds.count >= 4 }
        let deliveries = receiver.deliveries
        #expect(deliveries.allSatisfy { $0.signatureValid })
        #expect(Set(deliveries.compactMap(\.id)) == receiver.deliveredIds)
        #expect(receiver.deliveredIds.count == 4)
        #expect(deliveries.count { $0.status == 503 } == 2)
        var seen: [String: String] = [:]
        for delivery in deliveries {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any])
            let data = try #require(body["data"] as? [String: Any])
            let messageId = try #require(data["messageId"] as? String)
            seen[messageId] = data["class"] as? String
            #expect(requests.contains(data["requestId"] as? String ?? ""))
        }
        #expect(seen.count == 4)
        #expect(seen.values.sorted() == ["permanent", "success", "success", "transient"])
        // Each request is completed in the store the third process left.
        for requestId in requests {
            let answer = try await RawHTTP.exchange(port: third.port, "GET /v1/requests/\(requestId)?wait=30 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try answer.json()["state"] as? String == "completed")
        }
    }
}
