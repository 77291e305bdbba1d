import Foundation
@testable import GatewayServer
import Logging
import ServiceLifecycle
import SENSMock
import Store
import PostgresTestServer
import Testing

/// Idempotent sends (PRODUCT.md §7) over real sockets against the signature-verifying mock: a keyed send reaches
/// SENS once, however often and however concurrently it is retried.
@Suite("Idempotency: a retried send never reaches SENS twice")
struct IdempotencyTests {
    static let target = "/sms/v2/services/\(Fixtures.smsServiceID)/messages"
    static let body = #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01012345678"}]}"#

    static func send(key: String?, body: String = body, extra: String = "") -> String {
        let keyHeader = key.map { "Idempotency-Key: \($0)\r\n" } ?? ""
        return "POST \(Self.target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(keyHeader)\(extra)Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }

    static func sendsReceived(_ mock: SENSMock) -> Int {
        mock.receivedRequests.filter { $0.method == "POST" }.count
    }

    @Test("the same keyed send twice reaches SENS once; the second answer is the first, byte for byte, marked replayed")
    func replay() async throws {
        try await TestGateway.run { gw in
            let first = try await RawHTTP.exchange(port: gw.port, Self.send(key: "order-1001"))
            #expect(first.status == 202)
            #expect(first.header("idempotent-replayed") == nil)
            let second = try await RawHTTP.exchange(port: gw.port, Self.send(key: "order-1001"))
            #expect(second.status == first.status)
            #expect(second.body == first.body)
            #expect(second.contentType == first.contentType)
            #expect(second.header("idempotent-replayed") == "true")
            #expect(Self.sendsReceived(gw.mock) == 1)
            #expect(gw.mock.acceptedSends == 1)
            // The quoted form of the IETF draft is the same key.
            let quoted = try await RawHTTP.exchange(port: gw.port, Self.send(key: "\"order-1001\""))
            #expect(quoted.body == first.body)
            #expect(Self.sendsReceived(gw.mock) == 1)
            // The key is the gateway's: SENS never sees it.
            #expect(gw.mock.receivedRequests.last?.header("idempotency-key") == nil)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"sensgate_idempotency_total{outcome="claimed"} 1"#))
            #expect(metrics.contains(#"sensgate_idempotency_total{outcome="replayed"} 2"#))
            #expect(gw.logs.all.contains { $0.contains(#""idempotency":"replayed""#) })
        }
    }

    @Test("fifty concurrent sends with one key reach SENS once: one 202, the rest in progress or replays")
    func concurrent() async throws {
        try await TestGateway.run { gw in
            let answers = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<50 { group.addTask { try await RawHTTP.exchange(port: gw.port, Self.send(key: "burst-1")) } }
                var answers: [TestResponse] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(gw.mock.acceptedSends == 1)
            #expect(Self.sendsReceived(gw.mock) == 1)
            let sent = answers.filter { $0.status == 202 && $0.header("idempotent-replayed") == nil }
            #expect(sent.count == 1)
            for answer in answers where !(answer.status == 202 && answer.header("idempotent-replayed") == nil) {
                if answer.status == 409 {
                    #expect(try answer.error().code == "idempotency_in_progress")
                    #expect(try answer.error().errorClass == "transient")
                    #expect(answer.header("retry-after") == "1")
                } else {
                    #expect(answer.status == 202)
                    #expect(answer.header("idempotent-replayed") == "true")
                    #expect(answer.body == sent.first?.body)
                }
            }
        }
    }

    @Test("a keyed send that times out at SENS: 504 outcome unknown, then 409 outcome unknown on retry, never resent")
    func timeout() async throws {
        try await TestGateway.run(configure: { $0.upstreamTimeout = .seconds(1) }) { gw in
            gw.mock.injectFault(.delay(milliseconds: 3_000))
            let first = try await RawHTTP.exchange(port: gw.port, Self.send(key: "slow-1"))
            #expect(first.status == 504)
            #expect(try first.error().code == "upstream_outcome_unknown")
            #expect(try first.error().errorClass == "unknown")
            #expect(try first.error().retryable == false)
            for _ in 0..<3 {
                let retry = try await RawHTTP.exchange(port: gw.port, Self.send(key: "slow-1"))
                #expect(retry.status == 409)
                #expect(try retry.error().code == "idempotency_outcome_unknown")
                #expect(try retry.error().errorClass == "unknown")
                #expect(try retry.error().retryable == false)
            }
            #expect(Self.sendsReceived(gw.mock) == 1)
            // Without a key the same timeout is also `unknown`, never `transient`.
            gw.mock.injectFault(.delay(milliseconds: 3_000))
            let unkeyed = try await RawHTTP.exchange(port: gw.port, Self.send(key: nil))
            #expect(try unkeyed.error().code == "upstream_outcome_unknown")
            #expect(try unkeyed.error().errorClass == "unknown")
        }
    }

    @Test("a connection cut after the send left is outcome unknown too; a connect that fails sent nothing and frees the key")
    func resetAndRefused() async throws {
        try await TestGateway.run { gw in
            gw.mock.injectFault(.reset)
            let cut = try await RawHTTP.exchange(port: gw.port, Self.send(key: "cut-1"))
            #expect(try cut.error().code == "upstream_outcome_unknown")
            let retry = try await RawHTTP.exchange(port: gw.port, Self.send(key: "cut-1"))
            #expect(try retry.error().code == "idempotency_outcome_unknown")
            #expect(Self.sendsReceived(gw.mock) == 1)
        }
        let closed = try await closedPort()
        try await TestGateway.run(upstream: "http://127.0.0.1:\(closed)") { gw in
            for _ in 0..<2 {
                let refused = try await RawHTTP.exchange(port: gw.port, Self.send(key: "refused-1"))
                #expect(try refused.error().code == "upstream_unreachable")
            }
        }
    }

    @Test("SENS's 429 sent nothing: the key is freed and the retry is sent; a 5xx is kept and replayed (SENS may have sent)")
    func upstreamStatuses() async throws {
        try await TestGateway.run { gw in
            gw.mock.injectFault(.status(429))
            let throttled = try await RawHTTP.exchange(port: gw.port, Self.send(key: "throttled-1"))
            #expect(throttled.status == 429)
            let retried = try await RawHTTP.exchange(port: gw.port, Self.send(key: "throttled-1"))
            #expect(retried.status == 202)
            #expect(retried.header("idempotent-replayed") == nil)
            #expect(gw.mock.acceptedSends == 1)

            gw.mock.injectFault(.status(500))
            let failed = try await RawHTTP.exchange(port: gw.port, Self.send(key: "failed-1"))
            #expect(failed.status == 500)
            let replayed = try await RawHTTP.exchange(port: gw.port, Self.send(key: "failed-1"))
            #expect(replayed.status == 500)
            #expect(replayed.body == failed.body)
            #expect(replayed.header("idempotent-replayed") == "true")
            #expect(Self.sendsReceived(gw.mock) == 3)
        }
    }

    @Test("another body, target or method under a used key is 422; bad keys are 400; GET ignores the header")
    func mismatchAndValidation() async throws {
        try await TestGateway.run { gw in
            #expect(try await RawHTTP.exchange(port: gw.port, Self.send(key: "k-1")).status == 202)
            let otherBody = Self.body.replacingOccurrences(of: "hi", with: "hello")
            let mismatch = try await RawHTTP.exchange(port: gw.port, Self.send(key: "k-1", body: otherBody))
            #expect(mismatch.status == 422)
            #expect(try mismatch.error().code == "idempotency_key_mismatch")
            #expect(try mismatch.error().errorClass == "permanent")
            #expect(Self.sendsReceived(gw.mock) == 1)
            let long = String(repeating: "k", count: 256)
            for bad in ["", long, "\"unterminated", "\"bad\\escape\""] {
                let answer = try await RawHTTP.exchange(port: gw.port, Self.send(key: bad))
                #expect(answer.status == 400, "key \(bad.prefix(20))")
                #expect(try answer.error().code == "invalid_request")
            }
            let twice = try await RawHTTP.exchange(port: gw.port, Self.send(key: "a", extra: "Idempotency-Key: b\r\n"))
            #expect(twice.status == 400)
            #expect(try await RawHTTP.exchange(port: gw.port, Self.send(key: String(repeating: "k", count: 255))).status == 202)
            #expect(Self.sendsReceived(gw.mock) == 2)
            let get = try await RawHTTP.exchange(
                port: gw.port, "GET \(Self.target)/fault-status-404 HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \r\nConnection: close\r\n\r\n")
            // SENS's own answer, not a 400 for the (empty) key.
            #expect(get.status == 404)
        }
    }

    static let tokens = """
        strict:
          token: strict-token-0123456789
          require-idempotency-key: true
        other:
          token: other-token-0123456789
        """

    @Test("keys are the caller's own; a caller that must send keys is refused without one")
    func callers() async throws {
        try await TestGateway.run(configure: { $0.callerTokens = try? CallerTokens(yaml: Self.tokens, source: "test") }) { gw in
            let missing = try await RawHTTP.exchange(port: gw.port, Self.send(key: nil, extra: "Authorization: Bearer strict-token-0123456789\r\n"))
            #expect(missing.status == 400)
            #expect(try missing.error().code == "invalid_request")
            #expect(Self.sendsReceived(gw.mock) == 0)
            let strict = try await RawHTTP.exchange(port: gw.port, Self.send(key: "shared", extra: "Authorization: Bearer strict-token-0123456789\r\n"))
            #expect(strict.status == 202)
            // The same key from another caller is another key: sent, not replayed.
            let other = try await RawHTTP.exchange(port: gw.port, Self.send(key: "shared", extra: "Authorization: Bearer other-token-0123456789\r\n"))
            #expect(other.status == 202)
            #expect(other.header("idempotent-replayed") == nil)
            #expect(other.body != strict.body)
            #expect(gw.mock.acceptedSends == 2)
            let unkeyed = try await RawHTTP.exchange(port: gw.port, Self.send(key: nil, extra: "Authorization: Bearer other-token-0123456789\r\n"))
            #expect(unkeyed.status == 202)
        }
    }

    @Test("a tracked keyed send replayed is not tracked twice; its replay names the same tracking record")
    func tracked() async throws {
        try await TestGateway.run { gw in
            let first = try await RawHTTP.exchange(port: gw.port, Self.send(key: "tracked-1", extra: "X-Sensgate-Track: true\r\n"))
            let requestId = try #require(try first.json()["requestId"] as? String)
            #expect(first.header("x-sensgate-tracking") == requestId)
            let second = try await RawHTTP.exchange(port: gw.port, Self.send(key: "tracked-1", extra: "X-Sensgate-Track: true\r\n"))
            #expect(second.header("x-sensgate-tracking") == requestId)
            #expect(second.header("idempotent-replayed") == "true")
            #expect(try await gw.store.counts().requests.values.reduce(0, +) == 1)
            #expect(gw.mock.acceptedSends == 1)
        }
    }

    @Test("keyed sends fail closed: with the store gone, 503 store_unavailable and nothing sent; unkeyed sends still go")
    func storeGone() async throws {
        try await TestGateway.run { gw in
            await gw.store.close()
            let keyed = try await RawHTTP.exchange(port: gw.port, Self.send(key: "k-gone"))
            #expect(keyed.status == 503)
            #expect(try keyed.error().code == "store_unavailable")
            #expect(try keyed.error().errorClass == "transient")
            #expect(Self.sendsReceived(gw.mock) == 0)
            let unkeyed = try await RawHTTP.exchange(port: gw.port, Self.send(key: nil))
            #expect(unkeyed.status == 202)
        }
    }

    @Test("kill -9 and restart keep the keys: an answered send replays; a send in flight when the process died is outcome unknown")
    func restart() async throws {
        let first = try await ServeProcess.start()
        let answered = try await RawHTTP.exchange(port: first.port, Self.send(key: "before-kill"))
        #expect(answered.status == 202)
        // A send that SENS holds (5 s) when the process is killed: it reached SENS, its answer never came back.
        first.mock.injectFault(.delay(milliseconds: 5_000))
        let inFlight = Task { try? await RawHTTP.exchange(port: first.port, Self.send(key: "in-flight"), timeout: .seconds(10)) }
        try await waitUntil { Self.sendsReceived(first.mock) == 2 }
        first.kill()
        _ = await inFlight.value

        let second = try await ServeProcess.start(restarting: first)
        defer { Task { await second.stop() } }
        let replayed = try await RawHTTP.exchange(port: second.port, Self.send(key: "before-kill"))
        #expect(replayed.status == 202)
        #expect(replayed.body == answered.body)
        #expect(replayed.header("idempotent-replayed") == "true")
        let unknown = try await RawHTTP.exchange(port: second.port, Self.send(key: "in-flight"))
        #expect(unknown.status == 409)
        #expect(try unknown.error().code == "idempotency_outcome_unknown")
        #expect(Self.sendsReceived(second.mock) == 2)
    }

    @Test("two replicas on one PostgreSQL store: a key claimed on one is replayed by the other, whose SENS sees nothing")
    func acrossReplicas() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let environment = [
            "SENSGATE_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=disable",
            "PGPASSWORD": PostgresTestServer.password,
        ]
        let a = try await ServeProcess.start(environment: environment)
        defer { a.terminate() }
        let b = try await ServeProcess.start(environment: environment)
        defer { b.terminate() }
        let first = try await RawHTTP.exchange(port: a.port, Self.send(key: "fleet-1"))
        #expect(first.status == 202)
        let replayed = try await RawHTTP.exchange(port: b.port, Self.send(key: "fleet-1"))
        #expect(replayed.status == 202)
        #expect(replayed.body == first.body)
        #expect(replayed.header("idempotent-replayed") == "true")
        // The same key with another body, on either replica: a mismatch.
        #expect(try await RawHTTP.exchange(port: b.port, Self.send(key: "fleet-1", body: Self.body + " ")).status == 422)
        #expect(Self.sendsReceived(a.mock) == 1)
        #expect(Self.sendsReceived(b.mock) == 0)
        await a.stop()
        await b.stop()
    }

    @Test("a key is kept idempotency-ttl: after it, the same send is sent again")
    func expiry() async throws {
        try await TestGateway.run(configure: { $0.idempotencyTTL = .milliseconds(300) }) { gw in
            #expect(try await RawHTTP.exchange(port: gw.port, Self.send(key: "ttl-1")).status == 202)
            // Replays until the key expires, then one more send reaches SENS.
            try await waitUntil {
                let answer = try await RawHTTP.exchange(port: gw.port, Self.send(key: "ttl-1"))
                return answer.status == 202 && answer.header("idempotent-replayed") == nil
            }
            #expect(gw.mock.acceptedSends == 2)
            // The sweeper removes the expired keys from the store.
            let sweeper = ServiceGroup(
                configuration: .init(
                    services: [KeySweeper(store: gw.store, metrics: gw.gateway.metrics, logger: Logger(label: "sweep"), every: .milliseconds(50))],
                    gracefulShutdownSignals: [], logger: Logger(label: "sweep")))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await sweeper.run() }
                try await waitUntil { try await gw.store.counts().keys == 0 }
                await sweeper.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }
}
