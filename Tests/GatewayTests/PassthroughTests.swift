import Foundation
import GatewayServer
import SENSMock
import Signing
import UpstreamClient
import Testing

/// Client → sensgate → the project's signature-verifying SENS mock, over real sockets and real libcurl.
@Suite("Signed passthrough")
struct PassthroughTests {
    static let sms = Fixtures.smsServiceID

    @Test("a POST is signed and forwarded byte for byte; status, body and content type come back unchanged")
    func postPassthrough() async throws {
        try await TestGateway.run { gw in
            let body = #"{"type":"SMS","from":"0212345678","content":"héllo \"quoted\"","messages":[{"to":"01012345678"}]}"#
            let response = try await gw.send("POST", "/sms/v2/services/\(Self.sms)/messages",
                                             headers: [("Content-Type", "application/json; charset=utf-8")], body: body)
            #expect(response.status == 202)
            #expect(response.contentType == "application/json; charset=utf-8")
            let json = try response.json()
            #expect(json["statusCode"] as? String == "202")
            #expect((json["requestId"] as? String)?.hasPrefix("RMOCK-sms-") == true)

            let received = try #require(gw.mock.receivedRequests.last)
            #expect(received.signatureValid)
            #expect(received.method == "POST")
            #expect(received.target == "/sms/v2/services/\(Self.sms)/messages")
            #expect(received.body == Array(body.utf8))
            #expect(received.header("content-type") == "application/json; charset=utf-8")
            #expect(received.header("x-ncp-iam-access-key") == TestGateway.accessKey)
        }
    }

    @Test("a GET with a query string is signed over the exact request-target")
    func getWithQuery() async throws {
        try await TestGateway.run { gw in
            let target = "/sms/v2/services/\(Self.sms)/messages?requestId=RSMA-demo-0001&pageSize=10"
            let response = try await gw.send("GET", target)
            #expect(response.status == 200)
            let messages = try #require(try response.json()["messages"] as? [[String: Any]])
            #expect(messages.count == 3)
            let received = try #require(gw.mock.receivedRequests.last)
            #expect(received.target == target)
            #expect(received.signatureValid)
        }
    }

    @Test("percent-escapes go upstream exactly as the caller wrote them, upper- or lower-case, and the signature holds")
    func escapesVerbatim() async throws {
        try await TestGateway.run { gw in
            for target in [
                "/sms/v2/services/\(Self.sms)/messages?requestId=RSMA-demo-0001&to=%2B8210%3A",
                "/sms/v2/services/\(Self.sms)/messages?requestId=RSMA-demo-0001&to=%2b8210%3a&name=%C3%A9",
            ] {
                let response = try await gw.send("GET", target)
                #expect(response.status == 200, "\(target): \(response.text)")
                let received = try #require(gw.mock.receivedRequests.last)
                #expect(received.target == target)
                #expect(received.signatureValid)
            }
        }
    }

    @Test("upstream error statuses pass through unchanged")
    func upstreamStatusPassesThrough() async throws {
        try await TestGateway.run { gw in
            let missing = try await gw.send("GET", "/brandmessage/v2/services/\(Fixtures.brandMessageServiceID)/messages/no-such-id")
            #expect(missing.status == 404)
            #expect(try missing.json()["error"] != nil)
            let throttled = try await gw.send("GET", "/alimtalk/v2/services/x/messages/fault-status-429-7")
            #expect(throttled.status == 429)
        }
    }

    @Test("a wrong secret is rejected by the upstream's signature check, and the 401 comes back as SENS sent it")
    func wrongSecret() async throws {
        try await TestGateway.run(mockSecret: "another-secret") { gw in
            let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/\(Fixtures.smsSeedMessageID)")
            #expect(response.status == 401)
            #expect(gw.mock.receivedRequests.last?.signatureValid == false)
        }
    }

    @Test("only allowlisted caller headers reach the upstream: credentials, x-ncp-* in any spelling, Forwarded and the rest stay")
    func headerStripping() async throws {
        try await TestGateway.run { gw in
            let response = try await gw.send(
                "GET", "/sms/v2/services/\(Self.sms)/messages/\(Fixtures.smsSeedMessageID)",
                headers: [
                    ("x-ncp-apigw-signature-v2", "forged"), ("x-ncp-iam-access-key", "EVILKEY"), ("x-ncp-apigw-timestamp", "1"),
                    ("x-ncp-lang", "ko-KR"), ("Authorization", "Bearer caller-token"), ("Cookie", "session=1"),
                    ("Proxy-Authorization", "Basic eA=="), ("Connection", "x-hop"), ("x-hop", "1"), ("TE", "trailers"),
                    ("x-trace", "dropped-too"), ("Accept", "application/json"), ("X-Original-URL", "/admin"),
                    ("Forwarded", "for=1.2.3.4"), ("X-NCP_APIGW_TIMESTAMP", "1"), ("x-ncp_iam_access_key", "EVILKEY"),
                    ("Accept-Language", "ko-KR"), ("User-Agent", "billing/1.0"), ("X-Forwarded-Host", "evil"),
                ])
            #expect(response.status == 200)
            let received = try #require(gw.mock.receivedRequests.last)
            #expect(received.signatureValid)
            let names = Set(received.headers.map(\.0))
            for dropped in ["authorization", "cookie", "proxy-authorization", "x-hop", "te", "x-ncp-lang", "x-trace", "x-original-url",
                            "forwarded", "x-ncp_apigw_timestamp", "x-ncp_iam_access_key", "x-forwarded-host"] {
                #expect(!names.contains(dropped), "\(dropped) was forwarded")
            }
            #expect(received.header("accept-language") == "ko-KR")
            #expect(received.header("user-agent") == "billing/1.0")
            #expect(received.headers.filter { $0.0 == "x-ncp-iam-access-key" }.map(\.1) == [TestGateway.accessKey])
            #expect(received.headers.filter { $0.0 == "x-ncp-apigw-signature-v2" }.count == 1)
            #expect(received.header("x-ncp-apigw-signature-v2") != "forged")
            #expect(received.header("accept") == "application/json")
        }
    }

    static let refusedTargets: [(String, Int)] = [
        ("/admin/keys", 404),
        ("/sms/v3/services/x/messages", 404),
        ("/smsx/v2/services/x", 404),
        ("/sms/v2/../../admin", 400),
        ("/sms/v2/services/%2e%2e/%2E%2E/admin", 400),
        ("/sms/v2/services/x%2fmessages", 400),
        ("/sms/v2/services/x%5cmessages", 400),
        ("/sms/v2//services/x", 400),
        ("/sms/v2/services/x%00", 400),
        ("http://evil.example/sms/v2/services/x/messages", 400),
        ("/sms/v2/services/" + String(repeating: "a", count: 5000), 400),
        // Path parameters and double encoding, which some servers behind SENS's gateway read as another path.
        ("/sms/v2/services/x/..;/admin", 400),
        ("/sms/v2/services/x/.;/messages", 400),
        ("/sms/v2/services/x;jsessionid=1/messages", 400),
        ("/sms/v2/services/x/%252e%252e/admin", 400),
        ("/sms/v2/services/x/messages?requestId=%25", 400),
    ]

    @Test("paths outside the prefixes, dot segments, encoded slashes and absolute-form never reach the upstream",
          arguments: refusedTargets)
    func refusedTarget(_ target: String, _ status: Int) async throws {
        try await TestGateway.run { gw in
            let response = try await RawHTTP.exchange(
                port: gw.port, "GET \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(response.status == status, "\(target)")
            #expect(gw.mock.receivedRequests.isEmpty, "\(target) reached the upstream")
            if response.status != 431 && response.status != 414 {
                let error = try response.error()
                #expect(error.code == (status == 404 ? "not_found" : "invalid_request"))
                #expect(error.errorClass == "permanent")
            }
        }
    }

    @Test("a slow upstream ends in 504 upstream_timeout within the configured time", .tags(.timing))
    func timeout() async throws {
        try await TestGateway.run(configure: { $0.upstreamTimeout = .milliseconds(500) }) { gw in
            let start = ContinuousClock.now
            let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/fault-delay-3000")
            let elapsed = ContinuousClock.now - start
            #expect(response.status == 504)
            let error = try response.error()
            #expect(error.code == "upstream_timeout")
            #expect(error.errorClass == "transient")
            #expect(error.retryable)
            #expect(elapsed < .milliseconds(2500))
            // Still serving afterwards.
            #expect(try await gw.send("GET", "/healthz").status == 200)
        }
    }

    @Test("a closed upstream port ends in 502 upstream_unreachable")
    func unreachable() async throws {
        let port = try await closedPort()
        try await TestGateway.run(upstream: "http://127.0.0.1:\(port)") { gw in
            let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/x")
            #expect(response.status == 502)
            let error = try response.error()
            #expect(error.code == "upstream_unreachable")
            #expect(error.retryable)
        }
    }

    @Test("a reset or a truncated response is a classified 502, and the gateway keeps serving")
    func resetAndTruncate() async throws {
        try await TestGateway.run { gw in
            for fault in ["fault-reset", "fault-truncate", "fault-nothttp"] {
                let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/\(fault)")
                #expect(response.status == 502, "\(fault)")
                let code = try response.error().code
                #expect(code == "upstream_unreachable" || code == "upstream_malformed", "\(fault): \(code)")
            }
            #expect(try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/sms-delivered-0001").status == 200)
        }
    }

    @Test("a body over the response cap is refused as upstream_malformed")
    func responseTooLarge() async throws {
        try await TestGateway.run(configure: { $0.maxResponseBytes = 64 * 1024 }) { gw in
            let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/fault-huge-200000")
            #expect(response.status == 502)
            #expect(try response.error().code == "upstream_malformed")
        }
    }

    @Test("a request body over the limit is 413 and never forwarded")
    func requestBodyTooLarge() async throws {
        try await TestGateway.run(configure: { $0.maxBodyBytes = 1024 }) { gw in
            let response = try await gw.send("POST", "/sms/v2/services/\(Self.sms)/messages",
                                             headers: [("content-type", "application/json")], body: String(repeating: "x", count: 4096))
            #expect(response.status == 413)
            #expect(try response.error().code == "payload_too_large")
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("X-Request-Id is propagated upstream and returned; one is generated when absent")
    func requestIDs() async throws {
        try await TestGateway.run { gw in
            let given = try await RawHTTP.exchange(
                port: gw.port,
                "GET /sms/v2/services/\(Self.sms)/messages/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nX-Request-Id: caller-id-42\r\nConnection: close\r\n\r\n")
            #expect(given.status == 200)
            #expect(given.header("x-request-id") == "caller-id-42")
            #expect(gw.mock.receivedRequests.last?.header("x-request-id") == "caller-id-42")

            let generated = try await RawHTTP.exchange(port: gw.port, "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let id = try #require(generated.header("x-request-id"))
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
            #expect(try generated.error().requestId == id)
        }
    }

    @Test("health and readiness")
    func health() async throws {
        try await TestGateway.run { gw in
            let health = try await gw.send("GET", "/healthz")
            let ready = try await gw.send("GET", "/readyz")
            #expect(health.status == 200)
            #expect(ready.status == 200)
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("one JSON access-log line per request, phone numbers masked, no secret")
    func accessLog() async throws {
        try await TestGateway.run { gw in
            _ = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages?requestId=RSMA-demo-0001&to=01012345678")
            let lines = gw.logs.all.filter { $0.contains(#""msg":"request""#) }
            #expect(lines.count == 1)
            let line = try #require(lines.first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(json["status"] as? Int == 200)
            #expect(json["upstreamStatus"] as? Int == 200)
            #expect(json["route"] as? String == "/sms/v2")
            #expect((json["path"] as? String)?.contains("010********") == true)
            // The time is RFC 3339 UTC with milliseconds, and now (read back with Foundation's own parser).
            let time = try #require(json["time"] as? String)
            let parser = ISO8601DateFormatter()
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            #expect(time.utf8.count == 24 && time.hasSuffix("Z"))
            #expect(abs(try #require(parser.date(from: time)).timeIntervalSinceNow) < 60)
            for text in gw.logs.all {
                #expect(!text.contains("01012345678"))
                #expect(!text.contains(TestGateway.secret))
            }
        }
    }
}

@Suite("Upstream client")
struct UpstreamClientTests {
    @Test("sequential calls reuse one upstream connection (keep-alive through the curl multi handle)")
    func connectionReuse() async throws {
        try await TestGateway.run { gw in
            for _ in 0..<25 {
                let response = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
                #expect(response.status == 200)
            }
            #expect(gw.mock.receivedRequests.count == 25)
            #expect(gw.mock.acceptedConnections == 1)
        }
    }

    @Test("one reused curl handle carries nothing of one request into the next: method, body, headers and target")
    func handleReuse() async throws {
        try await TestGateway.run { gw in
            let base = "/sms/v2/services/\(PassthroughTests.sms)/messages"
            let send = #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01012345678"}]}"#
            // (method, target, caller headers, body): one after another, so the loop takes the same spare handle each time.
            let steps: [(String, String, [(String, String)], String?)] = [
                ("POST", base, [("Content-Type", "application/json"), ("Accept", "application/json")], send),
                ("HEAD", base + "/sms-delivered-0001", [], nil),
                ("GET", base + "/sms-delivered-0001?x=1", [("Accept-Language", "ko")], nil),
                ("DELETE", base + "/sms-delivered-0001", [], nil),
                ("PUT", base + "/sms-delivered-0001", [("Content-Type", "text/plain")], "changed"),
                ("GET", base + "/sms-delivered-0001", [], nil),
                ("POST", base, [("Content-Type", "application/json")], send),
                ("OPTIONS", base, [], nil),
                ("GET", base + "/sms-delivered-0001", [("User-Agent", "reuse-test")], nil),
            ]
            for (method, target, headers, body) in steps {
                gw.mock.clearReceived()
                _ = try await gw.send(method, target, headers: headers, body: body)
                let received = try #require(gw.mock.receivedRequests.last, "\(method) \(target) did not reach the upstream")
                #expect(received.method == method)
                #expect(received.target == target)
                #expect(received.signatureValid)
                #expect(received.body == Array((body ?? "").utf8), "\(method) \(target)")
                // Exactly the caller's allowlisted headers: none left over from the step before, no default of curl's.
                for name in ["content-type", "accept", "accept-language", "user-agent"] {
                    let sent = headers.first { $0.0.lowercased() == name }?.1
                    #expect(received.header(name) == sent, "\(method) \(target): \(name)")
                }
                #expect(received.header("expect") == nil)
                #expect(received.header("content-length") == (body.map { String($0.utf8.count) } ?? (method == "POST" ? "0" : nil)))
            }
            #expect(gw.mock.acceptedConnections == 1)
        }
    }

    @Test("a reused curl handle keeps working after curl retried dead kept-alive connections: its retry count starts afresh")
    func retriedDeadConnections() async throws {
        try await TestGateway.run { gw in
            let base = "/sms/v2/services/\(PassthroughTests.sms)/messages"
            // Eight kept-alive connections in curl's pool (eight lookups at once, each held a moment by the upstream).
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await gw.send("GET", base + "/fault-delay-300").status } }
                // SENS's answer after the delay (no such message): an answer, not a gateway failure.
                for try await status in group { #expect(status == 404) }
            }
            // One after another, so the loop takes the same spare handle each time: the upstream drops the kept-alive
            // connection each lookup arrives on, and curl sends it again on another one it holds (no new connection).
            // curl counts those retries on the handle and gives up after five unless the handle is reset.
            for index in 0..<7 {
                gw.mock.injectFault(.close)
                let response = try await gw.send("GET", base + "/sms-delivered-0001")
                #expect(response.status == 200, "lookup \(index) after a dropped connection: \(response.status)")
            }
            // Each lookup was sent twice, by curl itself on a connection it held: none failed back to the gateway's own
            // retry (which would hide a handle that gave up), and no connection was opened.
            #expect(gw.mock.receivedRequests.count == 8 + 2 * 7)
            #expect(gw.mock.acceptedConnections == 8)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(!metrics.contains("sensgate_upstream_retries_total{"), "the gateway retried a lookup curl gave up on")
        }
    }

    @Test("the local SENS refuses a stale timestamp, an unknown key and a missing signature, like SENS")
    func mockVerifiesLikeSENS() async throws {
        let mock = SENSMock(accessKey: "AK", secretKey: SecretKey("s3"))
        let port = try await mock.start()
        let client = try UpstreamClient(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:\(port)"))
        let target = "/sms/v2/services/x/messages/sms-delivered-0001"
        func call(_ signed: SignedHeaders?) async throws -> Int {
            var headers: [(String, String)] = []
            if let signed {
                headers = [(SignatureHeader.timestamp, signed.timestamp), (SignatureHeader.accessKey, signed.accessKey), (SignatureHeader.signature, signed.signature)]
            }
            return try await client.execute(UpstreamRequest(method: "GET", target: target, headers: headers)).status
        }
        let now = Signer.nowMilliseconds()
        let good = Signer(accessKey: "AK", secretKey: SecretKey("s3"))
        #expect(try await call(good.sign(method: "GET", target: target, epochMilliseconds: now)) == 200)
        #expect(try await call(good.sign(method: "GET", target: target, epochMilliseconds: now - 4 * 60_000)) == 200)
        #expect(try await call(good.sign(method: "GET", target: target, epochMilliseconds: now - 6 * 60_000)) == 401)
        #expect(try await call(good.sign(method: "GET", target: target, epochMilliseconds: now + 6 * 60_000)) == 401)
        #expect(try await call(good.sign(method: "GET", target: target + "?x=1", epochMilliseconds: now)) == 401)
        #expect(try await call(Signer(accessKey: "OTHER", secretKey: SecretKey("s3")).sign(method: "GET", target: target)) == 401)
        #expect(try await call(nil) == 401)
        await client.shutdown()
        await mock.stop()
    }

    @Test("the curl loop runs on its own thread, named for top -H and profiles")
    func loopThreadIsNamed() async throws {
        let mock = SENSMock(accessKey: "AK", secretKey: SecretKey("s3"))
        let port = try await mock.start()
        let client = try UpstreamClient(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:\(port)"))
        _ = try await client.execute(UpstreamRequest(method: "GET", target: "/sms/v2/services/x/messages/m", headers: []))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
        #expect(names.contains("sensgate-curl\n"))
        await client.shutdown()
        await mock.stop()
    }
}
