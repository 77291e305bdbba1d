import Foundation
@testable import GatewayServer
import SENSMock
import Signing
@testable import SENSClient
import Testing

@Suite("Retries")
struct RetryTests {
    static let lookup = "/v1/results/sms/sms-delivered-0001"

    @Test("a GET lookup is retried through 5xx, each attempt freshly signed")
    func retriesThrough5xx() async throws {
        try await TestGateway.run(configure: { $0.retryPolicy.baseBackoff = .milliseconds(10) }) { gw in
            gw.mock.injectFault(.status(503), count: 2)
            let response = try await gw.send("GET", Self.lookup)
            #expect(response.status == 200)
            let received = gw.mock.receivedRequests
            #expect(received.count == 3)
            let allSigned = received.allSatisfy { $0.signatureValid }
            #expect(allSigned)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"sensgate_upstream_retries_total{route="/v1/results",reason="5xx"} 2"#))
        }
    }

    @Test("429 with Retry-After waits at least that long, then succeeds")
    func honoursRetryAfter() async throws {
        try await TestGateway.run { gw in
            gw.mock.injectFault(.status(429, retryAfter: 1))
            let start = ContinuousClock.now
            let response = try await gw.send("GET", Self.lookup)
            #expect(response.status == 200)
            #expect(ContinuousClock.now - start >= .seconds(1))
            #expect(gw.mock.receivedRequests.count == 2)
        }
    }

    @Test("a POST is never sent twice once its bytes may have left")
    func postNotRetried() async throws {
        try await TestGateway.run { gw in
            gw.mock.injectFault(.status(503), count: 1)
            let response = try await gw.send("POST", "/sms/v2/services/s/messages", headers: [("content-type", "application/json")], body: "{}")
            #expect(response.status == 503)
            #expect(gw.mock.receivedRequests.count == 1)
            gw.mock.clearReceived()
            let reset = try await gw.send("POST", "/sms/v2/services/s/messages/fault-reset", body: "{}")
            #expect(reset.status == 502)
            #expect(gw.mock.receivedRequests.count == 1)
        }
    }

    @Test("a passthrough GET is retried after a reset")
    func passthroughGetRetriedAfterReset() async throws {
        try await TestGateway.run(configure: { $0.retryPolicy.baseBackoff = .milliseconds(10) }) { gw in
            gw.mock.injectFault(.reset)
            let response = try await gw.send("GET", "/sms/v2/services/s/messages/sms-delivered-0001")
            #expect(response.status == 200)
            #expect(gw.mock.receivedRequests.count == 2)
        }
    }

    @Test("all attempts stay inside one deadline", .tags(.timing))
    func deadline() async throws {
        try await TestGateway.run(configure: {
            $0.upstreamTimeout = .seconds(1)
            $0.retryPolicy = RetryPolicy(maxRetries: 10, baseBackoff: .milliseconds(300), maxBackoff: .seconds(1))
        }) { gw in
            let start = ContinuousClock.now
            let response = try await gw.send("GET", "/v1/results/sms/fault-status-502")
            // Without the deadline, ten retries with these backoffs would take several seconds; slack for a loaded machine.
            #expect(ContinuousClock.now - start < .seconds(3))
            // The last attempt's answer, or — when a loaded machine leaves it too little of the deadline — its timeout.
            #expect(response.status == 502 || response.status == 504)
            #expect(try ["upstream_error", "upstream_timeout"].contains(response.error().code))
            #expect(gw.mock.receivedRequests.count < 11)
        }
    }

    @Test("retries can be switched off")
    func disabled() async throws {
        try await TestGateway.run(configure: { $0.retryPolicy.maxRetries = 0 }) { gw in
            gw.mock.injectFault(.status(500))
            let response = try await gw.send("GET", Self.lookup)
            #expect(response.status == 502)
            #expect(gw.mock.receivedRequests.count == 1)
        }
    }

    @Test("policy: what is retryable", arguments: [
        (RetryPolicy.Outcome.connectFailed, "POST", true), (.connectFailed, "GET", true),
        (.connectionLost, "GET", true), (.connectionLost, "POST", false),
        (.status(503, retryAfterSeconds: nil), "GET", true), (.status(503, retryAfterSeconds: nil), "POST", false),
        (.status(429, retryAfterSeconds: 1), "GET", true), (.status(404, retryAfterSeconds: nil), "GET", false),
        (.status(400, retryAfterSeconds: nil), "GET", false), (.other, "GET", false),
    ])
    func retryable(_ outcome: RetryPolicy.Outcome, _ method: String, _ expected: Bool) {
        #expect(RetryPolicy.isRetryable(outcome, method: method) == expected)
    }

    @Test("policy: jittered exponential backoff, capped, Retry-After as a floor, nothing past the deadline")
    func backoff() {
        let policy = RetryPolicy(maxRetries: 5, baseBackoff: .milliseconds(100), maxBackoff: .milliseconds(400))
        let far = Duration.seconds(60)
        #expect(policy.delay(beforeRetry: 1, after: .connectFailed, remaining: far, random: 0.999)! < .milliseconds(100))
        #expect(policy.delay(beforeRetry: 2, after: .connectFailed, remaining: far, random: 0.999)! > .milliseconds(150))
        #expect(policy.delay(beforeRetry: 5, after: .connectFailed, remaining: far, random: 0.999)! <= .milliseconds(400))
        #expect(policy.delay(beforeRetry: 1, after: .connectFailed, remaining: far, random: 0) == .zero)
        #expect(policy.delay(beforeRetry: 6, after: .connectFailed, remaining: far, random: 0.5) == nil)
        #expect(policy.delay(beforeRetry: 1, after: .status(429, retryAfterSeconds: 3), remaining: far, random: 0.5) == .seconds(3))
        #expect(policy.delay(beforeRetry: 1, after: .status(429, retryAfterSeconds: 3), remaining: .seconds(2), random: 0.5) == nil)
        #expect(policy.delay(beforeRetry: 1, after: .connectFailed, remaining: .milliseconds(20), random: 0.5) == nil)
    }
}

@Suite("Protecting the SENS account")
struct ProtectionTests {
    @Test("over the token bucket: 429 rate_limited, never sent")
    func tokenBucket() async throws {
        try await TestGateway.run(configure: {
            $0.upstreamRate = 0.01  // one token per 100 s: none comes back during the test, however loaded the machine
            $0.upstreamBurst = 2
        }) { gw in
            var statuses: [Int] = []
            for _ in 0..<3 { statuses.append(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status) }
            #expect(statuses == [200, 200, 429])
            let limited = try await RawHTTP.exchange(port: gw.port, "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try limited.error().code == "rate_limited")
            #expect(try limited.error().errorClass == "transient")
            #expect(limited.header("retry-after") == "1")
            #expect(gw.mock.receivedRequests.count == 2)
        }
    }

    @Test("over the cap on calls in flight: 429 rate_limited")
    func inFlightCap() async throws {
        try await TestGateway.run(configure: { $0.upstreamMaxInFlight = 1 }) { gw in
            // Slow enough that it still holds the one slot when the second call comes, however loaded the machine.
            async let slow = gw.send("GET", "/v1/results/sms/fault-delay-5000")
            try await waitFor { !gw.mock.receivedRequests.isEmpty }
            let second = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(second.status == 429)
            #expect(try second.error().code == "rate_limited")
            #expect(try await slow.status == 404)
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status == 200)
        }
    }

    @Test("the circuit opens after consecutive connect failures and fails fast")
    func breakerOpens() async throws {
        let port = try await closedPort()
        try await TestGateway.run(upstream: "http://127.0.0.1:\(port)", configure: {
            $0.breakerThreshold = 2
            $0.breakerCooldown = .seconds(30)
            $0.retryPolicy.maxRetries = 0
        }) { gw in
            for _ in 0..<2 {
                let response = try await gw.send("GET", "/v1/results/sms/x")
                #expect(try response.error().code == "upstream_unreachable")
            }
            let fast = try await gw.send("GET", "/v1/results/sms/x")
            #expect(fast.status == 502)
            #expect(try fast.error().code == "upstream_unreachable")
            #expect(fast.text.contains("failing fast"))
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains("sensgate_circuit_breaker_opened_total 1"))
            #expect(metrics.contains(#"sensgate_upstream_refused_total{reason="circuit_open"} 1"#))
        }
    }

    @Test("the breaker: open, then one probe; every outcome of the probe closes or reopens it")
    func breakerStates() throws {
        typealias Machine = CircuitBreaker.StateMachine
        let t0 = ContinuousClock.now
        var breaker = Machine(threshold: 2, cooldown: .seconds(5), probeDeadline: .seconds(11))
        #expect(try breaker.admit(now: t0) == .call)
        #expect(breaker.record(.unreachable, for: .call, now: t0) == nil)
        #expect(breaker.record(.noAnswer, for: .call, now: t0) == nil)  // sent, no answer: says nothing of connectivity
        #expect(breaker.record(.unreachable, for: .call, now: t0) == .opened)
        #expect(throws: UpstreamGuard.Refusal.self) { try breaker.admit(now: t0 + .seconds(1)) }
        let probe = try breaker.admit(now: t0 + .seconds(6))
        #expect(probe == .probe(1))
        #expect(throws: UpstreamGuard.Refusal.self) { try breaker.admit(now: t0 + .seconds(6)) }  // only one
        // A probe that times out after it was sent reopens the circuit: it never stays half-open.
        #expect(breaker.record(.noAnswer, for: probe, now: t0 + .seconds(16)) == .reopened)
        #expect(throws: UpstreamGuard.Refusal.self) { try breaker.admit(now: t0 + .seconds(20)) }
        // A probe refused by another limit, or cancelled, lets the next call probe at once.
        let second = try breaker.admit(now: t0 + .seconds(22))
        breaker.abandon(second, now: t0 + .seconds(22))
        let third = try breaker.admit(now: t0 + .seconds(22))
        #expect(third == .probe(3))
        // A probe whose outcome never comes is replaced after the probe deadline; the stale one no longer decides.
        #expect(throws: UpstreamGuard.Refusal.self) { try breaker.admit(now: t0 + .seconds(30)) }
        let fourth = try breaker.admit(now: t0 + .seconds(34))
        #expect(fourth == .probe(4))
        #expect(breaker.record(.unreachable, for: third, now: t0 + .seconds(34)) == nil)
        #expect(breaker.phase == .probing(since: t0 + .seconds(34), probe: 4))
        #expect(breaker.record(.reachable, for: fourth, now: t0 + .seconds(35)) == .closed)
        #expect(breaker.phase == .closed)
        // Closed again, it counts from zero; any answer, to any call, closes it.
        #expect(breaker.record(.unreachable, for: .call, now: t0 + .seconds(36)) == nil)
        #expect(breaker.record(.unreachable, for: .call, now: t0 + .seconds(36)) == .opened)
        #expect(breaker.record(.reachable, for: .call, now: t0 + .seconds(37)) == .closed)
        var off = Machine(threshold: 0, cooldown: .seconds(5), probeDeadline: .seconds(1))
        for _ in 0..<10 { #expect(off.record(.unreachable, for: .call, now: t0) == nil) }
        #expect(try off.admit(now: t0) == .call)
    }

    @Test("the token bucket refills at its rate up to its burst")
    func bucket() {
        let t0 = ContinuousClock.now
        let bucket = TokenBucket(rate: 10, burst: 3, now: t0)
        #expect((0..<4).map { _ in bucket.take(now: t0) } == [true, true, true, false])
        #expect(bucket.take(now: t0 + .milliseconds(100)))
        #expect(!bucket.take(now: t0 + .milliseconds(100)))
        #expect((0..<4).map { _ in bucket.take(now: t0 + .seconds(10)) } == [true, true, true, false])
    }

    @Test("a replica's share of the bucket: rate and burst divided, tokens earned kept up to the new burst, at least one")
    func bucketShare() {
        let t0 = ContinuousClock.now
        let bucket = TokenBucket(rate: 30, burst: 30, now: t0)
        bucket.share(1.0 / 3, now: t0)
        #expect(bucket.rate == 10)
        // Full at 30, cut to the new burst of 10.
        #expect((0..<11).map { _ in bucket.take(now: t0) }.filter { $0 }.count == 10)
        // Refilled at the shared rate: 0.5 s → 5 tokens.
        #expect((0..<6).map { _ in bucket.take(now: t0 + .milliseconds(500)) }.filter { $0 }.count == 5)
        // Back to the whole: the rate and burst are the configured ones again (tokens earned so far kept).
        bucket.share(1, now: t0 + .seconds(10))
        #expect(bucket.rate == 30)
        #expect((0..<31).map { _ in bucket.take(now: t0 + .seconds(10)) }.filter { $0 }.count == 10)
        #expect((0..<31).map { _ in bucket.take(now: t0 + .seconds(20)) }.filter { $0 }.count == 30)
        // A tiny share still allows one call.
        let small = TokenBucket(rate: 2, burst: 2, now: t0)
        small.share(0.01, now: t0)
        #expect(small.take(now: t0))
        #expect(!small.take(now: t0))
    }

    @Test("background work leaves the callers a reserve: half the burst, or for a burst under two a full bucket")
    func bucketReserve() {
        let t0 = ContinuousClock.now
        let bucket = TokenBucket(rate: 10, burst: 4, now: t0)
        #expect(bucket.leavesReserve(now: t0))
        _ = bucket.take(now: t0)
        #expect(bucket.leavesReserve(now: t0))  // 3 - 1 >= 2
        _ = bucket.take(now: t0)
        #expect(!bucket.leavesReserve(now: t0))  // 2 - 1 < 2
        // Shared among replicas down to a burst of 1.5: only a full bucket leaves a reserve.
        let shared = TokenBucket(rate: 3, burst: 3, now: t0)
        shared.share(0.5, now: t0)
        #expect(shared.leavesReserve(now: t0))
        _ = shared.take(now: t0)
        #expect(!shared.leavesReserve(now: t0))
        #expect(!shared.leavesReserve(now: t0 + .milliseconds(300)))  // 0.5 + 0.45 tokens
        #expect(shared.leavesReserve(now: t0 + .seconds(1)))  // full again
        // A burst of one: background calls only from a full bucket, never into the callers' last token's refill.
        let one = TokenBucket(rate: 1, burst: 1, now: t0)
        #expect(one.leavesReserve(now: t0))
        _ = one.take(now: t0)
        #expect(!one.leavesReserve(now: t0 + .milliseconds(500)))
    }
}

@Suite("Caller tokens")
struct CallerTokenTests {
    static let file = """
        billing: billing-token-0123456789
        marketing:
          token: marketing-token-abcdefghij
          channels: [brandmessage, alimtalk]
        smsonly:
          token: smsonly-token-abcdefghijk
          prefixes: ["/sms/v2/services/ncp:sms:kr:1:billing/"]
        """

    static func configure(_ configuration: inout GatewayConfiguration) {
        configuration.callerTokens = try? CallerTokens(yaml: Self.file, source: "test")
    }

    @Test("with tokens configured, a request without a valid one is 401 and never reaches SENS")
    func unauthorized() async throws {
        try await TestGateway.run(configure: Self.configure) { gw in
            for headers in [[], [("Authorization", "Bearer wrong-token-0123456789")], [("X-Sensgate-Token", "billing-token-012345678")],
                            [("Authorization", "Basic billing-token-0123456789")]] {
                let response = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: headers)
                #expect(response.status == 401)
                #expect(try response.error().code == "unauthorized")
                let passthrough = try await gw.send("GET", "/sms/v2/services/s/messages/sms-delivered-0001", headers: headers)
                #expect(passthrough.status == 401)
            }
            #expect(gw.mock.receivedRequests.isEmpty)
            #expect(try await gw.send("GET", "/healthz").status == 200)
        }
    }

    @Test("a valid token lets the caller in, named in logs and metrics, and the token is not forwarded")
    func authorized() async throws {
        try await TestGateway.run(configure: Self.configure) { gw in
            let bearer = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: [("Authorization", "Bearer billing-token-0123456789")])
            #expect(bearer.status == 200)
            let header = try await gw.send("GET", "/sms/v2/services/s/messages/sms-delivered-0001", headers: [("X-Sensgate-Token", "billing-token-0123456789")])
            #expect(header.status == 200)
            let forwarded = try #require(gw.mock.receivedRequests.last)
            #expect(forwarded.header("x-sensgate-token") == nil)
            #expect(forwarded.header("authorization") == nil)
            #expect(gw.logs.all.contains { $0.contains(#""caller":"billing""#) })
            #expect(!gw.logs.all.contains { $0.contains("billing-token-0123456789") })
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"caller="billing""#))
        }
    }

    @Test("a caller limited to channels or prefixes gets 401 elsewhere, batch items included")
    func restricted() async throws {
        try await TestGateway.run(configure: Self.configure) { gw in
            let marketing = [("Authorization", "Bearer marketing-token-abcdefghij")]
            #expect(try await gw.send("GET", "/v1/results/brandmessage/bm-pending", headers: marketing).status == 200)
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: marketing).status == 401)
            #expect(try await gw.send("GET", "/sms/v2/services/s/messages/x", headers: marketing).status == 401)
            let batch = try await gw.send("POST", "/v1/results:batch", headers: marketing,
                                          body: #"{"lookups":[{"channel":"sms","messageId":"a"},{"channel":"alimtalk","messageId":"at-delivered"}]}"#)
            let results = try #require(try batch.json()["results"] as? [[String: Any]])
            #expect((results[0]["error"] as? [String: Any])?["code"] as? String == "unauthorized")
            #expect(results[1]["class"] as? String == "success")

            let smsOnly = [("Authorization", "Bearer smsonly-token-abcdefghijk")]
            #expect(try await gw.send("GET", "/sms/v2/services/ncp:sms:kr:1:billing/messages/sms-delivered-0001", headers: smsOnly).status == 200)
            #expect(try await gw.send("GET", "/sms/v2/services/ncp:sms:kr:2:other/messages/sms-delivered-0001", headers: smsOnly).status == 401)
        }
    }

    @Test("a caller limited by prefixes or service IDs cannot read other services' results through /v1")
    func v1OutsideTheCallersServices() async throws {
        let file = Self.file + """

            ownsms:
              token: ownsms-token-abcdefghijkl
              service-ids: ["ncp:sms:kr:1:billing"]
            """
        try await TestGateway.run(configure: { configuration in
            configuration.callerTokens = try? CallerTokens(yaml: file, source: "test")
            configuration.smsServiceID = "ncp:sms:kr:2:other"  // the default service is someone else's
        }) { gw in
            for token in ["smsonly-token-abcdefghijk", "ownsms-token-abcdefghijkl"] {
                let auth = [("Authorization", "Bearer \(token)")]
                // Single, list and batch item: the default service and a named other one are refused, its own is not.
                #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: auth).status == 401, "\(token)")
                #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001?serviceId=ncp:sms:kr:3:third", headers: auth).status == 401)
                #expect(try await gw.send("GET", "/v1/results/sms?requestId=RSMA-demo-0001", headers: auth).status == 401)
                #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001?serviceId=ncp:sms:kr:1:billing", headers: auth).status != 401)
                let batch = try await gw.send(
                    "POST", "/v1/results:batch", headers: auth,
                    body: #"{"lookups":[{"channel":"sms","messageId":"a"},{"channel":"sms","messageId":"b","serviceId":"ncp:sms:kr:1:billing"}]}"#)
                let results = try #require(try batch.json()["results"] as? [[String: Any]])
                #expect((results[0]["error"] as? [String: Any])?["code"] as? String == "unauthorized")
                #expect((results[1]["error"] as? [String: Any])?["code"] as? String != "unauthorized")
            }
            // A service-ids caller's passthrough: only its own service.
            let own = [("Authorization", "Bearer ownsms-token-abcdefghijkl")]
            #expect(try await gw.send("GET", "/sms/v2/services/ncp:sms:kr:2:other/messages/sms-delivered-0001", headers: own).status == 401)
            #expect(try await gw.send("GET", "/sms/v2/services/ncp:sms:kr:1:billing/messages/sms-delivered-0001", headers: own).status == 200)
            #expect(try await gw.send("GET", "/sms/v2/other", headers: own).status == 401)  // names no service
            #expect(gw.mock.receivedRequests.allSatisfy { !$0.target.contains("kr:2:other") && !$0.target.contains("kr:3:third") })
        }
    }

    @Test("the caller policy decides operations alone, without sockets")
    func policy() throws {
        let tokens = try CallerTokens(yaml: Self.file + "\nids:\n  token: ids-token-abcdefghijklmn\n  service-ids: [a:b]\n", source: "test")
        func caller(_ name: String) throws -> Caller { try #require(tokens.callers.first { $0.name == name }) }
        let billing = try caller("billing"), marketing = try caller("marketing"), smsOnly = try caller("smsonly"), ids = try caller("ids")
        let send = Operation(passthrough: "/sms/v2/services/ncp:sms:kr:1:billing/messages", method: "POST")
        #expect(send.channel == "sms" && send.serviceId == "ncp:sms:kr:1:billing")
        #expect(Operation(passthrough: "/sms/v2/x", method: "GET").serviceId == nil)
        #expect(billing.permits(send) && smsOnly.permits(send) && !marketing.permits(send) && !ids.permits(send))
        let other = Operation(channel: "sms", serviceId: "ncp:sms:kr:2:other", method: "GET", target: "/sms/v2/services/ncp:sms:kr:2:other/messages/m")
        #expect(billing.permits(other) && !smsOnly.permits(other))
        #expect(ids.permits(Operation(passthrough: "/sms/v2/services/a:b/messages", method: "POST")))
        // Nothing of a token is kept or shown: not in the description, not in a mirror.
        #expect(!String(describing: billing).contains("billing-token"))
        #expect(Mirror(reflecting: billing).children.allSatisfy { $0.label == "name" })
        #expect(tokens.authenticate("billing-token-0123456789")?.name == "billing")
        #expect(tokens.authenticate("billing-token-012345678") == nil)
        var dumped = ""
        dump(SecretKey("super-secret-value"), to: &dumped)
        #expect(!dumped.contains("super-secret-value"))
    }

    @Test("a tokens file that changes is picked up without a restart; a broken one keeps the old tokens")
    func reloadOnChange() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sensgate-tokens-\(UUID().uuidString).yaml").path
        try "svc: first-token-0123456789ab\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await TestGateway.run(configure: {
            $0.callerTokensFile = path
            $0.callerTokens = try? CallerTokens(yaml: "svc: first-token-0123456789ab\n", source: path)
        }) { gw in
            let first = [("Authorization", "Bearer first-token-0123456789ab")]
            let second = [("Authorization", "Bearer second-token-0123456789a")]
            #expect(try await gw.send("GET", "/healthz").status == 200)
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: first).status == 200)
            try "svc: second-token-0123456789a\nother: third-token-0123456789ab\n".write(toFile: path, atomically: true, encoding: .utf8)
            var switched = false
            for _ in 0..<50 where !switched {
                try await Task.sleep(for: .milliseconds(100))
                switched = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: second).status == 200
            }
            #expect(switched)
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: first).status == 401)
            try "svc: [broken\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: ConfigurationError.self) { try gw.gateway.reload() }
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001", headers: second).status == 200)
        }
    }

    @Test("a change to the tokens file reloads the tokens only, never the secret key (that waits for SIGHUP)")
    func tokensChangeKeepsKey() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sensgate-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokens = directory.appendingPathComponent("tokens.yaml").path
        let key = directory.appendingPathComponent("secret").path
        try "svc: first-token-0123456789ab\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        try TestGateway.secret.write(toFile: key, atomically: true, encoding: .utf8)
        try await TestGateway.run(configure: {
            $0.callerTokensFile = tokens
            $0.secretKeyFile = key
            $0.callerTokens = try? CallerTokens(yaml: "svc: first-token-0123456789ab\n", source: tokens)
        }) { gw in
            let target = "/sms/v2/services/\(Fixtures.smsServiceID)/messages/sms-delivered-0001"
            // A wrong key lands in the key file, then the tokens file changes.
            try "a-wrong-secret".write(toFile: key, atomically: true, encoding: .utf8)
            try "svc: second-token-0123456789a\n".write(toFile: tokens, atomically: true, encoding: .utf8)
            let second = [("Authorization", "Bearer second-token-0123456789a")]
            var switched = false
            for _ in 0..<100 where !switched {
                try await Task.sleep(for: .milliseconds(100))
                switched = try await gw.send("GET", target, headers: second).status != 401
            }
            #expect(switched)
            // Still signed with the key in force: SENS (the mock) accepts the signature.
            #expect(try await gw.send("GET", target, headers: second).status == 200)
            #expect(gw.mock.receivedRequests.last?.signatureValid == true)
        }
    }

    @Test("bad token files are refused with a clear reason that never shows a token", arguments: [
        "svc: short", "svc: [a, b]", "\"bad name\": token-0123456789abcdef", "a: same-token-0123456789\nb: same-token-0123456789",
        "svc:\n  token: token-0123456789abcdef\n  channels: [fax]", "svc:\n  token: token-0123456789abcdef\n  prefixes: [/admin/]",
        "svc:\n  channels: [sms]", "- a", "",
    ])
    func badFiles(_ text: String) {
        #expect {
            _ = try CallerTokens(yaml: text, source: "tokens.yaml")
        } throws: { error in
            let message = "\(error)"
            return message.contains("tokens.yaml") && !message.contains("0123456789")
        }
    }
}

@Suite("Hostile input")
struct HostileInputTests {
    @Test("oversized or malformed heads are refused and the gateway keeps serving", arguments: [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: a\rInjected: b\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: a\nInjected: b\r\nConnection: close\r\n\r\n",
        "GET /sms/v2/a\u{00}b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
    ])
    func malformedHead(_ request: String) async throws {
        try await TestGateway.run { gw in
            let response = try? await RawHTTP.exchange(port: gw.port, request, timeout: .seconds(5))
            if let response { #expect((400...499).contains(response.status), "\(response.status)") }
            #expect(gw.mock.receivedRequests.isEmpty)
            let health = try await gw.send("GET", "/healthz")
            #expect(health.status == 200)
        }
    }

    @Test("a client too slow to send its head or body is cut off", .tags(.timing))
    func slowClient() async throws {
        try await TestGateway.run(configure: { $0.clientTimeout = .milliseconds(400) }) { gw in
            let head = try await RawHTTP.timeUntilClosed(port: gw.port, sending: "GET /healthz HTTP/1.1\r\nHost:", limit: .seconds(5))
            #expect(head != nil && head! < .seconds(3))
            let silent = try await RawHTTP.timeUntilClosed(port: gw.port, sending: "", limit: .seconds(5))
            #expect(silent != nil)
            let body = try await RawHTTP.timeUntilClosed(
                port: gw.port, sending: "POST /sms/v2/services/s/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":", limit: .seconds(5))
            #expect(body != nil)
            // After an answer the connection waits under the idle timeout (75 s); a body that stalls after that is
            // still cut off at the client timeout.
            let later = try await RawHTTP.timeUntilClosed(
                port: gw.port,
                sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /sms/v2/services/s/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                limit: .seconds(5))
            #expect(later != nil && later! < .seconds(3))
            #expect(gw.mock.receivedRequests.isEmpty)
            #expect(try await gw.send("GET", "/healthz").status == 200)
        }
    }

    @Test("near max-connections an idle keep-alive connection is closed at the client timeout, not after the idle timeout")
    func crowdedIdle() async throws {
        try await TestGateway.run(configure: { $0.maxConnections = 5; $0.clientTimeout = .seconds(2) }) { gw in
            // Three connections answered once and kept (each idles under the idle timeout: the gateway has accepted
            // them), then a fourth that is answered and idles while four of five slots are taken.
            var silent: [RawConnection] = []
            for _ in 0..<3 {
                let connection = try await RawConnection(port: gw.port)
                try await connection.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await connection.readResponse().status == 200)
                silent.append(connection)
            }
            let idle = try await RawHTTP.timeUntilClosed(port: gw.port, sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", limit: .seconds(15))
            #expect(idle != nil, "kept for the 75 s idle timeout with four of five connections taken")
            for connection in silent { try? await connection.close() }
        }
    }

    @Test("many connections at once are served; beyond max-connections they are closed")
    func manyConnections() async throws {
        try await TestGateway.run { gw in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<200 {
                    group.addTask {
                        try await RawHTTP.exchange(port: gw.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.count == 200 && statuses.allSatisfy { $0 == 200 })
        }
        try await TestGateway.run(configure: { $0.maxConnections = 2 }) { gw in
            let idle1 = Task { try await RawHTTP.timeUntilClosed(port: gw.port, sending: "", limit: .seconds(2)) }
            let idle2 = Task { try await RawHTTP.timeUntilClosed(port: gw.port, sending: "", limit: .seconds(2)) }
            try await Task.sleep(for: .milliseconds(200))
            let third = try await RawHTTP.timeUntilClosed(port: gw.port, sending: "", limit: .seconds(1))
            #expect(third != nil && third! < .milliseconds(900))
            _ = try await idle1.value
            _ = try await idle2.value
        }
    }
}
