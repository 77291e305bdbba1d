import DeliveryResults
import JSON
import Foundation
import SENSMock
import Testing

@Suite("Normalization")
struct NormalizerTests {
    let normalizer = Normalizer()

    func one(_ channel: DeliveryChannel, _ messageId: String, serviceId: String = "svc") throws -> DeliveryResult {
        let results = try self.normalizer.normalize(channel: channel, serviceId: serviceId, body: SpecExamples.body(messageId))
        try #require(results.count == 1)
        return results[0]
    }

    func json(_ result: DeliveryResult) -> [UInt8] {
        var writer = JSONWriter()
        result.write(into: &writer)
        return writer.bytes
    }

    @Test("the SMS seed normalizes to PRODUCT.md's example, field by field")
    func smsSeed() throws {
        let result = try self.one(.sms, Fixtures.smsSeedMessageID, serviceId: "ncp:sms:kr:50*********1:sens")
        let produced = try #require(try SpecExamples.foundationJSON(self.json(result)) as? NSDictionary)
        let expected = try #require(try SpecExamples.foundationJSON(Array(SpecExamples.smsSeed.utf8)) as? NSDictionary)
        #expect(Set(produced.allKeys as! [String]) == Set(expected.allKeys as! [String]))
        for key in expected.allKeys as! [String] {
            #expect(produced[key] as? NSObject == expected[key] as? NSObject, "\(key)")
        }
    }

    @Test("the Brand Message seed normalizes field by field, with its failover as a second attempt")
    func brandMessageSeed() throws {
        let result = try self.one(.brandmessage, Fixtures.brandMessageSeedMessageID, serviceId: "ncp:kkobizmsg:kr:27*********6:sens")
        let produced = try #require(try SpecExamples.foundationJSON(self.json(result)) as? NSDictionary)
        let expected = try #require(try SpecExamples.foundationJSON(Array(SpecExamples.brandMessageSeed.utf8)) as? NSDictionary)
        #expect(Set(produced.allKeys as! [String]) == Set(expected.allKeys as! [String]))
        for key in expected.allKeys as! [String] {
            #expect(produced[key] as? NSObject == expected[key] as? NSObject, "\(key)")
        }
    }

    /// (channel, message id, status, class, deciding namespace, deciding code, deliveredVia, attempts)
    static let cases: [(DeliveryChannel, String, String, String, String?, String?, String?, Int)] = [
        (.sms, "sms-delivered-0001", "completed", "success", "sms.report", "0", "sms", 1),
        (.sms, "sms-processing-0001", "pending", "pending", nil, nil, nil, 1),
        (.sms, "sms-ready-0001", "pending", "pending", nil, nil, nil, 1),
        (.sms, "sms-poweroff-2003", "completed", "transient", "sms.report", "2003", nil, 1),
        (.sms, "sms-relay-S004", "completed", "transient", "sms.relay", "S004", nil, 1),
        (.sms, "sms-emma-E915", "completed", "permanent", "sms.emma", "E915", nil, 1),
        (.sms, "sms-unknown-7777", "completed", "unknown", "sms.report", "7777", nil, 1),
        // Kakao failed (3019, not a Kakao user), the SMS failover delivered: success via sms, the failover's code.
        (.brandmessage, "bm-failover-delivered", "completed", "success", "sms.report", "0", "sms", 2),
        // Both failed permanently: the primary (earlier) attempt's code decides.
        (.brandmessage, "bm-failover-failed", "completed", "permanent", "kakao", "3019", nil, 2),
        (.brandmessage, "bm-failover-pending", "pending", "pending", nil, nil, nil, 2),
        // The failover request itself was refused (E4002): both attempts permanent, the primary decides.
        (.brandmessage, "bm-failover-rejected", "completed", "permanent", "kakao", "3019", nil, 2),
        (.brandmessage, "bm-pending", "pending", "pending", nil, nil, nil, 1),
        (.brandmessage, "bm-processing", "pending", "pending", nil, nil, nil, 1),
        (.brandmessage, "bm-uncertain-3005", "completed", "unknown", "kakao", "3005", nil, 1),
        (.brandmessage, "bm-transient-3006", "completed", "transient", "kakao", "3006", nil, 1),
        (.brandmessage, "bm-request-rejected", "completed", "permanent", "kakao", "1025", nil, 1),
        (.brandmessage, "bm-unknown-6543", "completed", "unknown", "kakao", "6543", nil, 1),
        (.alimtalk, "at-delivered", "completed", "success", "kakao", "0000", "alimtalk", 1),
        (.alimtalk, "at-blocked-3020", "completed", "permanent", "kakao", "3020", nil, 1),
        (.alimtalk, "at-failover-delivered", "completed", "success", "sms.report", "0", "sms", 2),
    ]

    @Test("each case is classified as the spec says", arguments: cases)
    func classification(
        _ channel: DeliveryChannel, _ messageId: String, _ status: String, _ resultClass: String, _ namespace: String?, _ code: String?,
        _ deliveredVia: String?, _ attempts: Int
    ) throws {
        let result = try self.one(channel, messageId)
        #expect(result.status.rawValue == status)
        #expect(result.resultClass.rawValue == resultClass)
        #expect(result.retryable == (resultClass == "transient"))
        #expect(result.code?.namespace.rawValue == namespace)
        #expect(result.code?.value == code)
        #expect(result.deliveredVia?.rawValue == deliveredVia)
        #expect(result.attempts.count == attempts)
        #expect(result.attempts.first?.role == .primary)
        #expect(result.attempts.first?.channel == channel)
        if attempts == 2 {
            #expect(result.attempts[1].role == .failover)
            #expect(result.attempts[1].channel == .sms)
        }
        if code == "7777" || code == "6543" {
            #expect(result.code?.known == false)
            #expect(result.code?.description == nil)
        }
    }

    @Test("failover details: the rejected request is looked up in the failover table")
    func failoverRejected() throws {
        let result = try self.one(.brandmessage, "bm-failover-rejected")
        let failover = result.attempts[1]
        #expect(failover.code?.namespace == .failover)
        #expect(failover.code?.value == "E4002")
        #expect(failover.resultClass == .permanent)
        #expect(failover.serviceId == "ncp:sms:kr:500000000001:sens")
        #expect(failover.messageId == "fo-rejected-0001")
        #expect(failover.requestId == "RSLA-demo-0004")
    }

    @Test("AlimTalk always has templateCode and no message type")
    func alimTalk() throws {
        let result = try self.one(.alimtalk, "at-delivered")
        #expect(result.message.templateCode == "ORDER_SHIPPED")
        #expect(result.message.type == nil)
        #expect(result.message.from == "@sensgate")
        let text = String(decoding: self.json(result), as: UTF8.self)
        #expect(text.contains(#""templateCode":"ORDER_SHIPPED""#))
        #expect(text.contains(#""type":null"#))
    }

    @Test("every key is present, null where SENS gave nothing")
    func everyKeyPresent() throws {
        let result = try self.one(.sms, "sms-processing-0001")
        let object = try #require(try SpecExamples.foundationJSON(self.json(result)) as? [String: Any])
        let expectedKeys: Set = ["schema", "channel", "serviceId", "messageId", "requestId", "requestTime", "completeTime", "status", "class",
                                 "retryable", "deliveredVia", "code", "message", "attempts"]
        #expect(Set(object.keys) == expectedKeys)
        #expect(object["completeTime"] is NSNull)
        #expect(object["code"] is NSNull)
        let message = try #require(object["message"] as? [String: Any])
        #expect(Set(message.keys) == ["type", "contentType", "from", "to", "countryCode", "subject", "content", "templateCode", "telcoCode", "files"])
        #expect(message["telcoCode"] is NSNull)
        #expect((message["files"] as? [Any])?.isEmpty == true)
    }

    @Test("a list by request id yields every message, with the request id filled in")
    func list() throws {
        let body = Array(#"{"requestId":"R1","statusCode":"200","statusName":"success","messages":[{"messageId":"a","status":"COMPLETED","statusCode":"0"},{"messageId":"b","status":"PROCESSING"}]}"#.utf8)
        let results = try self.normalizer.normalize(channel: .sms, serviceId: "s", body: body)
        #expect(results.map(\.messageId) == ["a", "b"])
        #expect(results.map(\.requestId) == ["R1", "R1"])
        #expect(results.map(\.resultClass) == [.success, .pending])

        let kakao = Array(#"{"requestId":"R2","statusCode":"202","messages":[{"messageId":"k","requestStatusCode":"A000","messageStatusCode":"3008"}]}"#.utf8)
        let kakaoResults = try self.normalizer.normalize(channel: .alimtalk, serviceId: "s", body: kakao)
        #expect(kakaoResults.count == 1)
        #expect(kakaoResults[0].requestId == "R2")
        #expect(kakaoResults[0].resultClass == .permanent)
    }

    @Test("a code sent as a number is read as its text")
    func numericCode() throws {
        let body = Array(#"{"messages":[{"messageId":"a","status":"COMPLETED","statusCode":3018}]}"#.utf8)
        let result = try #require(try self.normalizer.normalize(channel: .sms, serviceId: "s", body: body).first)
        #expect(result.code?.value == "3018")
        #expect(result.resultClass == .permanent)
    }

    @Test("Kakao 4000 (no result yet) is pending")
    func kakaoPendingCode() throws {
        let body = Array(#"{"messageId":"k","requestStatusCode":"A000","messageStatusCode":"4000","messageStatusName":"fail"}"#.utf8)
        let result = try #require(try self.normalizer.normalize(channel: .brandmessage, serviceId: "s", body: body).first)
        #expect(result.resultClass == .pending)
        #expect(result.status == .pending)
        #expect(result.code?.value == "4000")
    }

    static let malformed: [(DeliveryChannel, String)] = [
        (.sms, "not json"),
        (.sms, "[]"),
        (.sms, #"{"statusCode":"200"}"#),
        (.sms, #"{"messages":{}}"#),
        (.sms, #"{"messages":[1]}"#),
        (.sms, #"{"messages":[{"status":"COMPLETED"}]}"#),
        (.sms, #"{"messages":[{"messageId":"a","status":"COMPLETED","statusCode":{"x":1}}]}"#),
        (.sms, #"{"messages":[{"messageId":"a","status":"READY","requestTime":"yesterday"}]}"#),
        (.sms, #"{"messages":[{"messageId":"a","status":"READY","files":"none"}]}"#),
        (.brandmessage, #"{"messageId":"a"}"#),
        (.brandmessage, #"{"requestStatusCode":"A000"}"#),
        (.brandmessage, #"{"messageId":"a","requestStatusCode":"A000","failover":"yes"}"#),
        (.alimtalk, #"{"messageId":"a","requestStatusCode":true}"#),
        (.alimtalk, #"{"unexpected":[1,2,3],"statusCode":42}"#),
        (.alimtalk, #"{"messageId":"a","requestStatusCode":"A000"} trailing"#),
    ]

    @Test("a body that is not the documented shape is refused whole", arguments: malformed)
    func refused(_ channel: DeliveryChannel, _ body: String) {
        #expect(throws: NormalizationError.self) {
            _ = try self.normalizer.normalize(channel: channel, serviceId: "s", body: Array(body.utf8))
        }
    }
}

@Suite("reserveTime")
struct ReserveTimeTests {
    // Expected values computed independently with Python's datetime (KST = UTC+9).
    @Test("a SENS reserveTime in Korea Standard Time, as Unix milliseconds", arguments: [
        ("2026-12-01 10:30", Int64(1_796_088_600_000)), ("2024-02-29 00:00:05", Int64(1_709_132_405_000)),
    ])
    func parsed(_ text: String, _ expected: Int64) {
        #expect(KoreanTime.epochMilliseconds(text) == expected)
    }

    @Test("anything else is not a reserveTime", arguments: ["2026-13-01 10:30", "2026-12-01", "tomorrow", "2026-12-01 10:30:00.5", "2026-12-01 24:00"])
    func refused(_ text: String) {
        #expect(KoreanTime.epochMilliseconds(text) == nil)
    }
}
