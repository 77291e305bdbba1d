import Foundation
import SENSMock
import Testing

/// The SENS mock follows a send through time (READY, PROCESSING, then an outcome chosen by the recipient number), so
/// tracking can be tested and demonstrated end to end. Reached through the gateway's passthrough and `/v1`.
@Suite("SENS mock: sends evolve")
struct MockDeliveryTests {
    static func send(_ channel: String, serviceId: String, recipients: [String], failover: Bool = false) -> String {
        let messages = recipients.map { #"{"to":"\#($0)"\#(failover ? #","useSmsFailover":true"# : "")}"# }.joined(separator: ",")
        return channel == "sms"
            ? #"{"type":"SMS","from":"0212345678","content":"hi","messages":[\#(messages)]}"#
            : #"{"plusFriendId":"@sensgate","templateCode":"ORDER_SHIPPED","messages":[\#(messages)]}"#
    }

    /// Polls `/v1/results/{channel}/{id}` until its status is not pending (wait for the condition, not a guess).
    static func waitCompleted(_ gw: TestGateway, channel: String, messageId: String) async throws -> [String: Any] {
        for _ in 0..<400 {
            let response = try await gw.send("GET", "/v1/results/\(channel)/\(messageId)")
            let json = try response.json()
            if json["status"] as? String == "completed" { return json }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw CancellationError()
    }

    @Test("an SMS send: one message per recipient, READY first, then the outcome its number picks (…3018 fails with 3018)")
    func smsOutcomes() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(400)) { gw in
            let sent = try await gw.send(
                "POST", "/sms/v2/services/\(Fixtures.smsServiceID)/messages", headers: [("content-type", "application/json")],
                body: Self.send("sms", serviceId: Fixtures.smsServiceID, recipients: ["01012345678", "01000003018"]))
            #expect(sent.status == 202)
            let requestId = try #require(try sent.json()["requestId"] as? String)
            let listed = try await gw.send("GET", "/v1/results/sms?requestId=\(requestId)")
            let results = try #require(try listed.json()["results"] as? [[String: Any]])
            #expect(results.count == 2)
            #expect(results.allSatisfy { $0["status"] as? String == "pending" })
            let ids = results.compactMap { $0["messageId"] as? String }
            let delivered = try await Self.waitCompleted(gw, channel: "sms", messageId: ids[0])
            #expect(delivered["class"] as? String == "success")
            let failed = try await Self.waitCompleted(gw, channel: "sms", messageId: ids[1])
            #expect(failed["class"] as? String == "permanent")
            #expect((failed["code"] as? [String: Any])?["value"] as? String == "3018")
        }
    }

    @Test("an AlimTalk to a non-Kakao user (…3019) with useSmsFailover: delivered by the SMS failover")
    func alimTalkFailover() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(400)) { gw in
            let sent = try await gw.send(
                "POST", "/alimtalk/v2/services/\(Fixtures.alimTalkServiceID)/messages", headers: [("content-type", "application/json")],
                body: Self.send("alimtalk", serviceId: Fixtures.alimTalkServiceID, recipients: ["01000003019", "01000002003" + "3019"], failover: true))
            #expect(sent.status == 202)
            let requestId = try #require(try sent.json()["requestId"] as? String)
            let listed = try await gw.send("GET", "/v1/results/alimtalk?requestId=\(requestId)")
            let ids = try #require(try listed.json()["results"] as? [[String: Any]]).compactMap { $0["messageId"] as? String }
            #expect(ids.count == 2)
            let fellBack = try await Self.waitCompleted(gw, channel: "alimtalk", messageId: ids[0])
            #expect(fellBack["class"] as? String == "success")
            #expect(fellBack["deliveredVia"] as? String == "sms")
            let bothFailed = try await Self.waitCompleted(gw, channel: "alimtalk", messageId: ids[1])
            #expect(bothFailed["deliveredVia"] is NSNull)
            #expect(bothFailed["class"] as? String != "success")
        }
    }

    @Test("a number ending 9999 never completes; a body without recipients is refused as SENS does")
    func neverAndRefused() async throws {
        try await TestGateway.run(deliveryDelay: .milliseconds(100)) { gw in
            let sent = try await gw.send(
                "POST", "/brandmessage/v2/services/\(Fixtures.brandMessageServiceID)/messages", headers: [("content-type", "application/json")],
                body: Self.send("brandmessage", serviceId: Fixtures.brandMessageServiceID, recipients: ["01011119999"]))
            let requestId = try #require(try sent.json()["requestId"] as? String)
            let messageId = "mock-brandmessage-\(requestId.split(separator: "-").last ?? "")-1"
            // Well past the delay (the mock's own clock decides), still pending.
            try await Task.sleep(for: .milliseconds(300))
            let result = try await gw.send("GET", "/v1/results/brandmessage/\(messageId)")
            #expect(try result.json()["status"] as? String == "pending")
            let refused = try await gw.send(
                "POST", "/sms/v2/services/\(Fixtures.smsServiceID)/messages", headers: [("content-type", "application/json")],
                body: #"{"type":"SMS","from":"0212345678","content":"hi"}"#)
            #expect(refused.status == 400)
        }
    }
}
