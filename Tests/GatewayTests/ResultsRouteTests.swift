import Foundation
import GatewayServer
import SENSMock
@testable import SENSClient
import Testing

/// The `/v1` routes end to end: client → sensgate → the signature-verifying SENS mock.
@Suite("Unified results routes")
struct ResultsRouteTests {
    @Test("one SMS result, with the configured default service ID and the spec's keys")
    func oneSMS() async throws {
        try await TestGateway.run { gw in
            let response = try await gw.send("GET", "/v1/results/sms/\(Fixtures.smsSeedMessageID)")
            #expect(response.status == 200)
            #expect(response.contentType == "application/json")
            let json = try response.json()
            #expect(json["schema"] as? String == "sensgate.delivery-result.v1")
            #expect(json["serviceId"] as? String == Fixtures.smsServiceID)
            #expect(json["class"] as? String == "permanent")
            #expect(json["raw"] == nil)
            let received = try #require(gw.mock.receivedRequests.last)
            #expect(received.signatureValid)
            #expect(received.target == "/sms/v2/services/\(Fixtures.smsServiceID)/messages/\(Fixtures.smsSeedMessageID)")
        }
    }

    @Test("?serviceId= overrides the default and ?include=raw adds SENS's own JSON")
    func serviceIdAndRaw() async throws {
        try await TestGateway.run { gw in
            let response = try await gw.send("GET", "/v1/results/brandmessage/bm-failover-delivered?serviceId=ncp:kkobizmsg:kr:9:other&include=raw")
            #expect(response.status == 200)
            let json = try response.json()
            #expect(json["serviceId"] as? String == "ncp:kkobizmsg:kr:9:other")
            #expect(json["deliveredVia"] as? String == "sms")
            let raw = try #require(json["raw"] as? [String: Any])
            #expect(raw["messageId"] as? String == "bm-failover-delivered")
            #expect(raw["requestStatusCode"] as? String == "A000")
            #expect(gw.mock.receivedRequests.last?.target.contains("ncp:kkobizmsg:kr:9:other") == true)
        }
    }

    @Test("an AlimTalk result")
    func alimTalk() async throws {
        try await TestGateway.run { gw in
            let json = try await gw.send("GET", "/v1/results/alimtalk/at-blocked-3020").json()
            #expect(json["channel"] as? String == "alimtalk")
            #expect(json["class"] as? String == "permanent")
            #expect((json["message"] as? [String: Any])?["templateCode"] as? String == "ORDER_SHIPPED")
        }
    }

    @Test("every message of one request, in SENS's order")
    func listByRequestId() async throws {
        try await TestGateway.run { gw in
            let response = try await gw.send("GET", "/v1/results/sms?requestId=RSMA-demo-0001")
            #expect(response.status == 200)
            let results = try #require(try response.json()["results"] as? [[String: Any]])
            #expect(results.map { $0["messageId"] as? String } == ["sms-delivered-0001", "sms-processing-0001", "sms-ready-0001"])
            #expect(results.map { $0["class"] as? String } == ["success", "pending", "pending"])
            #expect(gw.mock.receivedRequests.last?.target == "/sms/v2/services/\(Fixtures.smsServiceID)/messages?requestId=RSMA-demo-0001")

            let kakao = try await gw.send("GET", "/v1/results/brandmessage?requestId=RBBA-demo-0003&include=raw").json()
            #expect((kakao["results"] as? [Any])?.count == 2)
            #expect(kakao["raw"] is [String: Any])
        }
    }

    @Test("a batch is answered in order, each item a result or an error")
    func batch() async throws {
        try await TestGateway.run { gw in
            let body = #"""
                {"lookups":[
                  {"channel":"sms","messageId":"sms-delivered-0001"},
                  {"channel":"brandmessage","messageId":"no-such-message"},
                  {"channel":"fax","messageId":"x"},
                  {"channel":"alimtalk","messageId":"at-delivered","serviceId":"ncp:kkobizmsg:kr:1:at"},
                  {"channel":"sms","messageId":"fault-status-503"},
                  {"channel":"sms","messageId":"../../etc"},
                  {"channel":"brandmessage","messageId":"bm-uncertain-3005"}
                ]}
                """#
            let response = try await gw.send("POST", "/v1/results:batch", headers: [("content-type", "application/json")], body: body)
            #expect(response.status == 200)
            let results = try #require(try response.json()["results"] as? [[String: Any]])
            try #require(results.count == 7)
            #expect(results[0]["class"] as? String == "success")
            #expect((results[1]["error"] as? [String: Any])?["code"] as? String == "not_found")
            #expect((results[2]["error"] as? [String: Any])?["code"] as? String == "invalid_request")
            #expect(results[3]["serviceId"] as? String == "ncp:kkobizmsg:kr:1:at")
            #expect((results[4]["error"] as? [String: Any])?["code"] as? String == "upstream_error")
            #expect((results[4]["error"] as? [String: Any])?["retryable"] as? Bool == true)
            #expect((results[5]["error"] as? [String: Any])?["code"] as? String == "invalid_request")
            #expect(results[6]["class"] as? String == "unknown")
            // The two invalid lookups never reached SENS; the 503 was retried (2 retries by default).
            let targets = gw.mock.receivedRequests.map(\.target)
            #expect(!targets.contains { $0.contains("fax") || $0.contains("..") })
            #expect(targets.filter { $0.hasSuffix("/fault-status-503") }.count == 3)
            #expect(targets.count == 7)
        }
    }

    @Test("a batch that is not JSON, not the shape, or over 100 lookups is a 400")
    func badBatches() async throws {
        try await TestGateway.run { gw in
            let tooMany = #"{"lookups":["# + Array(repeating: #"{"channel":"sms","messageId":"a"}"#, count: 101).joined(separator: ",") + "]}"
            for body in ["not json", #"{"lookup":[]}"#, #"{"lookups":{}}"#, tooMany] {
                let response = try await gw.send("POST", "/v1/results:batch", headers: [("content-type", "application/json")], body: body)
                #expect(response.status == 400)
                #expect(try response.error().code == "invalid_request")
            }
            #expect(gw.mock.receivedRequests.isEmpty)
            let empty = try await gw.send("POST", "/v1/results:batch", body: #"{"lookups":[]}"#)
            #expect(try empty.json()["results"] as? [Any] != nil)
        }
    }

    /// (target, HTTP status, error code, class)
    static let requestErrors: [(String, Int, String, String)] = [
        ("/v1/results/fax/abc", 400, "invalid_request", "permanent"),
        ("/v1/results/sms/" + String(repeating: "a", count: 129), 400, "invalid_request", "permanent"),
        ("/v1/results/sms/a%20b", 400, "invalid_request", "permanent"),
        ("/v1/results/sms/abc?serviceId=bad/id", 400, "invalid_request", "permanent"),
        ("/v1/results/sms", 400, "invalid_request", "permanent"),
        ("/v1/results/sms?requestId=", 400, "invalid_request", "permanent"),
        ("/v1/other", 404, "not_found", "permanent"),
    ]

    @Test("bad channel, id or query is a 400 that never reaches SENS", arguments: requestErrors)
    func requestError(_ target: String, _ status: Int, _ code: String, _ errorClass: String) async throws {
        try await TestGateway.run { gw in
            let response = try await gw.send("GET", target)
            #expect(response.status == status, "\(target): \(response.text)")
            let error = try response.error()
            #expect(error.code == code)
            #expect(error.errorClass == errorClass)
            #expect(!error.retryable)
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("no serviceId given and none configured is a 400")
    func noServiceId() async throws {
        try await TestGateway.run(configure: { $0.alimTalkServiceID = nil }) { gw in
            let response = try await gw.send("GET", "/v1/results/alimtalk/at-delivered")
            #expect(response.status == 400)
            #expect(try response.error().code == "invalid_request")
        }
    }

    /// (message id that makes the mock fail, HTTP status, error code, class, upstream status)
    static let upstreamErrors: [(String, Int, String, String, Int?)] = [
        ("no-such-message", 404, "not_found", "permanent", 404),
        ("fault-status-401", 502, "upstream_auth_failed", "permanent", 401),
        ("fault-status-403", 502, "upstream_auth_failed", "permanent", 403),
        ("fault-status-429", 503, "upstream_throttled", "transient", 429),
        ("fault-status-500", 502, "upstream_error", "transient", 500),
        ("fault-status-503", 502, "upstream_error", "transient", 503),
        ("fault-garbage", 502, "upstream_malformed", "transient", 200),
        ("fault-wrongshape", 502, "upstream_malformed", "transient", 200),
        ("fault-html", 502, "upstream_malformed", "transient", 200),
        ("fault-huge-5000000", 502, "upstream_malformed", "transient", nil),
        ("fault-reset", 502, "upstream_unreachable", "transient", nil),
        ("fault-truncate", 502, "upstream_unreachable", "transient", nil),
    ]

    @Test("every upstream failure is the spec's classified error", arguments: upstreamErrors)
    func upstreamError(_ messageId: String, _ status: Int, _ code: String, _ errorClass: String, _ upstreamStatus: Int?) async throws {
        try await TestGateway.run { gw in
            for channel in ["sms", "brandmessage"] {
                let response = try await gw.send("GET", "/v1/results/\(channel)/\(messageId)", headers: [("X-Request-Id", "req-\(messageId)")])
                #expect(response.status == status, "\(channel)/\(messageId): \(response.text)")
                let error = try response.error()
                #expect(error.code == code)
                #expect(error.errorClass == errorClass)
                #expect(error.retryable == (errorClass == "transient"))
                #expect(error.upstreamStatus == upstreamStatus)
                #expect(error.requestId == "req-\(messageId)")
            }
        }
    }

    @Test("a result for another message than the one asked for is refused and never cached; a BOM is dropped, non-UTF-8 refused")
    func answersForTheMessageAskedFor() async throws {
        try await TestGateway.run(configure: { $0.cacheTTL = .seconds(60) }) { gw in
            for _ in 0..<2 {
                let other = try await gw.send("GET", "/v1/results/sms/fault-othermessage")
                #expect(other.status == 502)
                #expect(try other.error().code == "upstream_malformed")
            }
            // Not cached: both lookups reached SENS.
            #expect(gw.mock.receivedRequests.count == 2)
            let bom = try await gw.send("GET", "/v1/results/sms/fault-bom?include=raw")
            #expect(bom.status == 200)
            let json = try bom.json()  // valid JSON, `raw` included
            #expect(json["messageId"] as? String == "fault-bom")
            #expect((json["raw"] as? [String: Any])?["statusCode"] as? String == "200")
            let notUTF8 = try await gw.send("GET", "/v1/results/sms/fault-notutf8?include=raw")
            #expect(notUTF8.status == 502)
            #expect(try notUTF8.error().code == "upstream_malformed")
        }
    }

    @Test("SENS's 429 Retry-After is passed on")
    func retryAfter() async throws {
        try await TestGateway.run(configure: { $0.retryPolicy.maxRetries = 0 }) { gw in
            let response = try await RawHTTP.exchange(
                port: gw.port, "GET /v1/results/sms/fault-status-429-9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(response.status == 503)
            #expect(response.header("retry-after") == "9")
        }
    }

    @Test("a wrong key pair is upstream_auth_failed, never a leaked secret")
    func wrongSecret() async throws {
        try await TestGateway.run(mockSecret: "rotated-elsewhere") { gw in
            let response = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(response.status == 502)
            #expect(try response.error().code == "upstream_auth_failed")
            #expect(!response.text.contains(TestGateway.secret))
        }
    }

    @Test("unreachable and timeout")
    func transport() async throws {
        let port = try await closedPort()
        try await TestGateway.run(upstream: "http://127.0.0.1:\(port)") { gw in
            let response = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(response.status == 502)
            #expect(try response.error().code == "upstream_unreachable")
        }
        try await TestGateway.run(configure: { $0.upstreamTimeout = .milliseconds(300) }) { gw in
            let response = try await gw.send("GET", "/v1/results/sms/fault-delay-2000")
            #expect(response.status == 504)
            #expect(try response.error().code == "upstream_timeout")
        }
    }

    @Test("delivery results are counted in the metrics by channel, namespace and class")
    func metrics() async throws {
        try await TestGateway.run { gw in
            _ = try await gw.send("GET", "/v1/results/sms/sms-relay-S004")
            let text = try await gw.send("GET", "/metrics").text
            #expect(text.contains(#"sensgate_delivery_results_total{channel="sms",namespace="sms.relay",code="S004",class="transient"} 1"#))
            #expect(!text.contains("sms-relay-S004"))
        }
    }
}
