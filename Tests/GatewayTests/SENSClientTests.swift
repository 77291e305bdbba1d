import Foundation
@testable import GatewayServer
import SENSMock
@testable import SENSClient
import Testing

/// The SENS client over real sockets: what happened on the wire decides retries, the breaker and the error, and the
/// breaker always recovers.
@Suite("SENS client: outcomes, retries, breaker", .tags(.timing))
struct SENSClientTests {
    static let lookup = "/sms/v2/services/\(Fixtures.smsServiceID)/messages/\(Fixtures.smsSeedMessageID)"
    static let send = "/sms/v2/services/\(Fixtures.smsServiceID)/messages"
    static let sendBody = #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01012345678"}]}"#

    /// The circuit state gauge as scraped (0 closed, 1 open, 2 probing).
    static func circuitState(_ gw: TestGateway) async throws -> String? {
        let metrics = try await gw.send("GET", "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("sensgate_upstream_circuit_state ") }
        return line.flatMap { Double($0.split(separator: " ")[1]) }.map { String(Int($0)) }
    }

    @Test("a half-open probe that times out reopens the circuit, and it closes once SENS answers again")
    func probeTimesOutThenRecovers() async throws {
        try await TestGateway.run(configure: {
            $0.breakerThreshold = 2
            $0.breakerCooldown = .milliseconds(1500)
            $0.upstreamTimeout = .milliseconds(800)
            $0.retryPolicy.maxRetries = 0
        }) { gw in
            // SENS down: nothing listens, every connect is refused.
            let mockPort = try #require(Int(gw.gateway.configuration.upstream.split(separator: ":").last ?? ""))
            await gw.mock.stop()
            for _ in 0..<2 {
                let refused = try await gw.send("GET", Self.lookup)
                #expect(try refused.error().code == "upstream_unreachable")
            }
            let fast = try await gw.send("GET", Self.lookup)
            #expect(fast.text.contains("failing fast"))
            #expect(try await gw.send("GET", "/readyz").status == 503)
            #expect(try await Self.circuitState(gw) == "1")
            // Once the cooldown is over the gateway is ready again with no call made (a readiness probe that kept it
            // out of its Service would leave it no call to probe with).
            try await Task.sleep(for: .milliseconds(1600))
            #expect(try await gw.send("GET", "/readyz").status == 200)

            // SENS back but too slow to answer: the probe times out after it was sent.
            _ = try await gw.mock.start(port: mockPort)
            gw.mock.injectFault(.delay(milliseconds: 3000))
            let probe = try await gw.send("GET", Self.lookup)
            #expect(try probe.error().code == "upstream_timeout")
            // Not stuck half-open: open again, and after the cooldown the next call probes.
            #expect(try await Self.circuitState(gw) == "1")

            // SENS answers again: the next probe closes the circuit.
            var recovered = false
            for _ in 0..<100 where !recovered {
                recovered = try await gw.send("GET", Self.lookup).status == 200
                if !recovered { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(recovered)
            #expect(try await Self.circuitState(gw) == "0")
            #expect(try await gw.send("GET", "/readyz").status == 200)
            #expect(try await gw.send("GET", Self.lookup).status == 200)
        }
    }

    @Test("a connect that hangs is retried within the deadline, counted by the breaker, and curl's own text is logged")
    func hangingConnect() async throws {
        let hanging = try HangingListener()
        try await TestGateway.run(upstream: "http://127.0.0.1:\(hanging.port)", configure: {
            $0.upstreamConnectTimeout = .milliseconds(200)
            $0.upstreamTimeout = .seconds(3)
            $0.retryPolicy = RetryPolicy(maxRetries: 2, baseBackoff: .milliseconds(10), maxBackoff: .milliseconds(20))
            $0.breakerThreshold = 3
        }) { gw in
            let start = ContinuousClock.now
            let response = try await gw.send("POST", Self.send, headers: [("Content-Type", "application/json"), ("X-Request-Id", "hang-1")], body: Self.sendBody)
            let elapsed = ContinuousClock.now - start
            // Nothing was sent, so even a send is retried, and the answer is "unreachable", not a timeout.
            #expect(response.status == 502)
            #expect(try response.error().code == "upstream_unreachable")
            #expect(try response.error().errorClass == "transient")
            // Three attempts of 200 ms, inside the 3 s deadline (with room for a loaded machine).
            #expect(elapsed >= .milliseconds(600) && elapsed < .seconds(6))
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"reason="connect_failed""#))
            #expect(metrics.contains("sensgate_circuit_breaker_opened_total 1"))
            let line = try #require(gw.logs.all.first { $0.contains("hang-1") && $0.contains(#""msg":"request""#) })
            #expect(line.contains(#""upstreamError":"#) && line.contains("Failed to connect"), "\(line)")
        }
    }

    @Test("a send that times out or is cut after it left is upstream_outcome_unknown, class unknown, and not retried")
    func sendOutcomeUnknown() async throws {
        try await TestGateway.run(configure: { $0.upstreamTimeout = .milliseconds(1500) }) { gw in
            gw.mock.injectFault(.delay(milliseconds: 5000))
            let timedOut = try await gw.send("POST", Self.send, headers: [("Content-Type", "application/json")], body: Self.sendBody)
            #expect(timedOut.status == 504)
            let error = try timedOut.error()
            #expect(error.code == "upstream_outcome_unknown" && error.errorClass == "unknown" && !error.retryable)
            #expect(gw.mock.receivedRequests.count == 1)
            gw.mock.clearReceived()
            gw.mock.injectFault(.reset)
            let reset = try await gw.send("POST", Self.send, headers: [("Content-Type", "application/json")], body: Self.sendBody)
            #expect(reset.status == 502)
            #expect(try reset.error().code == "upstream_outcome_unknown")
            #expect(gw.mock.receivedRequests.count == 1)
            // A lookup that times out stays an ordinary, retryable timeout.
            gw.mock.injectFault(.delay(milliseconds: 5000), count: 5)
            let lookup = try await gw.send("GET", Self.lookup)
            #expect(try lookup.error().code == "upstream_timeout")
            #expect(try lookup.error().retryable)
        }
    }

    @Test("a SENS status outside the contract's table is upstream_error, permanent")
    func unexpectedStatus() async throws {
        try await TestGateway.run { gw in
            for status in [302, 405, 409, 413] {
                gw.mock.injectFault(.status(status))
                let response = try await gw.send("GET", "/v1/results/sms/\(Fixtures.smsSeedMessageID)")
                let error = try response.error()
                #expect(response.status == 502, "\(status)")
                #expect(error.code == "upstream_error" && error.errorClass == "permanent" && !error.retryable, "\(status)")
                #expect(error.upstreamStatus == status)
            }
        }
    }

    @Test("sends have their own in-flight cap: lookups at their cap do not starve them")
    func separateAdmission() async throws {
        try await TestGateway.run(configure: { $0.upstreamMaxInFlight = 4 }) { gw in
            // Four slow lookups fill the lookup cap.
            // Long enough that none of them can finish while the test looks, however loaded the machine.
            gw.mock.injectFault(.delay(milliseconds: 5000), count: 4)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask { _ = try await gw.send("GET", Self.lookup) }
                }
                try await waitFor { gw.mock.receivedRequests.count >= 4 }
                let lookup = try await gw.send("GET", Self.lookup)
                #expect(lookup.status == 429)
                #expect(try lookup.error().code == "rate_limited")
                let send = try await gw.send("POST", Self.send, headers: [("Content-Type", "application/json")], body: Self.sendBody)
                #expect(send.status == 202)
                try await group.waitForAll()
            }
        }
    }
}

/// Caller traffic first (PRODUCT.md §6): the tracker's calls take the shared budget only while half of it is free.
@Suite("Admission: the gateway's own calls after the callers'")
struct BackgroundAdmissionTests {
    @Test("a background call is refused once half the bucket is spent; callers still get the other half")
    func halfTheBucket() throws {
        let start = ContinuousClock.now
        let limits = UpstreamGuard(
            rate: 0.001, burst: 10, maxInFlight: 100, breakerThreshold: 5, breakerCooldown: .seconds(5), probeDeadline: .seconds(10))
        for _ in 0..<5 {
            _ = try limits.admit(.lookup, now: start)
            limits.release(.lookup)
        }
        #expect(throws: UpstreamGuard.Refusal.rateLimited) { _ = try limits.admit(.lookup, background: true, now: start) }
        for _ in 0..<5 {
            _ = try limits.admit(.lookup, now: start)
            limits.release(.lookup)
        }
        #expect(throws: UpstreamGuard.Refusal.rateLimited) { _ = try limits.admit(.lookup, now: start) }
    }

    @Test("a background call is refused while half the lookup slots are taken")
    func halfTheSlots() throws {
        let limits = UpstreamGuard(rate: 0, burst: 1, maxInFlight: 4, breakerThreshold: 5, breakerCooldown: .seconds(5), probeDeadline: .seconds(10))
        _ = try limits.admit(.lookup)
        _ = try limits.admit(.lookup)
        #expect(throws: UpstreamGuard.Refusal.tooManyInFlight) { _ = try limits.admit(.lookup, background: true) }
        limits.release(.lookup)
        _ = try limits.admit(.lookup, background: true)
    }
}
