import Foundation
import PostgresTestServer
import SENSMock
import Synchronization
import Testing

/// PostgreSQL stopped under load, then started again (PRODUCT.md §8): caller traffic that needs no store keeps
/// flowing, what needs the store answers `503 store_unavailable` (a keyed send sends nothing) or says its record
/// failed, `/readyz` reports the store, and once the database is back the same process resumes — nothing committed
/// before the outage is lost.
@Suite("Store outage: PostgreSQL stopped and started under a running gateway")
struct StoreOutageTests {
    @Test("PostgreSQL stopped under load: lookups flow, keyed sends 503 with nothing sent, readyz reports; started again: keys and tracking resume, the committed send's event arrives", .timeLimit(.minutes(4)))
    func stopAndStart() async throws {
        // A cluster of this test's own: stopping the shared one would fail every other test on it.
        let server = try await PostgresTestServer.start()
        let database = try await server.makeDatabase()
        let receiver = WebhookReceiver()
        let receiverPort = try await receiver.start()
        let secretFile = try WebhookTests.secretFile()
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let gateway = try await ServeProcess.start(
            environment: [
                "SENSGATE_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=disable",
                "PGPASSWORD": PostgresTestServer.password,
                "SENSGATE_WEBHOOK_URL": "http://127.0.0.1:\(receiverPort)/hook", "SENSGATE_WEBHOOK_SECRET_FILE": secretFile,
                "SENSGATE_SMS_SERVICE_ID": Fixtures.smsServiceID,
            ], deliveryDelay: .seconds(4))
        defer { gateway.terminate() }
        let port = gateway.port

        // Committed before the outage: a tracked send (its result is final only after the database is back).
        let committed = try await RestartTests.trackedSend(port: port, to: ["01012340001"])

        // Lookups through the passthrough and /v1 from four clients, for the whole outage.
        let outageOver = Flag()
        let lookups = Task {
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for client in 0..<4 {
                    group.addTask {
                        var statuses: [Int] = []
                        while !outageOver.isSet {
                            let target = client % 2 == 0
                                ? "/sms/v2/services/\(Fixtures.smsServiceID)/messages/\(Fixtures.smsSeedMessageID)"
                                : "/v1/results/sms/\(Fixtures.smsSeedMessageID)"
                            statuses.append(try await RawHTTP.exchange(port: port, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status)
                        }
                        return statuses
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }

        try await server.halt()
        let sendsBefore = IdempotencyTests.sendsReceived(gateway.mock)
        let keyedAt = ContinuousClock.now
        let keyed = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "outage-1"), timeout: .seconds(30))
        let refusedIn = ContinuousClock.now - keyedAt
        #expect(keyed.status == 503)
        #expect(try keyed.error().code == "store_unavailable")
        #expect(try keyed.error().errorClass == "transient")
        #expect(IdempotencyTests.sendsReceived(gateway.mock) == sendsBefore, "a keyed send reached SENS while its key could not be claimed")
        // Once an operation has timed out, the next keyed send is refused at once, not after another timeout.
        let againAt = ContinuousClock.now
        let again = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "outage-1b"), timeout: .seconds(30))
        let againIn = ContinuousClock.now - againAt
        #expect(again.status == 503)
        #expect(againIn < .seconds(3), "the second keyed send during the outage took \(againIn)")
        // And every later one: only the heartbeat tries the database while it does not answer, never a caller's send
        // (spread over seconds, past the gate's one try a second).
        var slowest: Duration = .zero
        for index in 0..<6 {
            let at = ContinuousClock.now
            let later = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "outage-1c-\(index)"), timeout: .seconds(30))
            slowest = max(slowest, ContinuousClock.now - at)
            #expect(later.status == 503)
            try await Task.sleep(for: .milliseconds(700))
        }
        #expect(slowest < .seconds(3), "a later keyed send during the outage took \(slowest)")
        #expect(IdempotencyTests.sendsReceived(gateway.mock) == sendsBefore)
        // A tracked send stands (SENS has it); only its record failed, and the answer says so.
        let tracked = try await RawHTTP.exchange(
            port: port, IdempotencyTests.send(key: nil, extra: "X-Sensgate-Track: true\r\n"), timeout: .seconds(30))
        #expect(tracked.status == 202)
        #expect(tracked.header("x-sensgate-tracking") == "failed")
        let ready = try await RawHTTP.exchange(port: port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(ready.status == 200)
        #expect(try ready.json()["store"] as? String == "unavailable")
        let metrics = try await RawHTTP.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").text
        #expect(metrics.contains("sensgate_store_errors_total{"))

        outageOver.set()
        let statuses = try await lookups.value
        #expect(!statuses.isEmpty)
        #expect(statuses.allSatisfy { $0 == 200 }, "lookups during the outage: \(Dictionary(grouping: statuses) { $0 }.mapValues(\.count))")

        // Back: the same process, no restart.
        try await server.resume()
        try await waitUntil(timeout: .seconds(60)) {
            let ready = try? await RawHTTP.exchange(port: port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return ready.map { $0.status == 200 && $0.text == #"{"status":"ready"}"# } ?? false
        }
        let first = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "outage-2"), timeout: .seconds(30))
        #expect(first.status == 202)
        let replay = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "outage-2"), timeout: .seconds(30))
        #expect(replay.header("idempotent-replayed") == "true")
        #expect(replay.body == first.body)
        // The send committed before the outage is followed to its end: its event arrives.
        try await waitUntil(timeout: .seconds(90)) { receiver.deliveries.contains { String(decoding: $0.body, as: UTF8.self).contains(committed) } }
        print("store outage: \(statuses.count) lookups during the outage, all 200; keyed send refused with 503 in \(refusedIn), the next in \(againIn), the slowest of six later \(slowest)")
        await gateway.stop()
        await receiver.stop()
    }

    @Test("PostgreSQL hung (every process stopped, connections open): lookups flow, keyed sends are refused with nothing sent; thawed, a retry of each key is sent once", .timeLimit(.minutes(3)))
    func hangAndThaw() async throws {
        let server = try await PostgresTestServer.start()
        let database = try await server.makeDatabase()
        let gateway = try await ServeProcess.start(environment: [
            "SENSGATE_STORE": "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=disable",
            "PGPASSWORD": PostgresTestServer.password, "SENSGATE_SMS_SERVICE_ID": Fixtures.smsServiceID,
            // A key's claim then holds for 1 + 1 + 10 s (the upstream deadline, the commit's, a margin).
            "SENSGATE_UPSTREAM_TIMEOUT": "1",
        ])
        defer { gateway.terminate() }
        let port = gateway.port
        let keyLease: Duration = .seconds(12)
        // The pool holds open connections (several: sends at once open more): the next statements go to backends that
        // will not answer — the keyed send's SELECT among them, not only the heartbeat's.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<6 { group.addTask { try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: "warm-\(index)")).status } }
            for try await status in group { #expect(status == 202) }
        }
        let sendsBefore = IdempotencyTests.sendsReceived(gateway.mock)

        try server.freeze()
        var thawed = false
        defer { if !thawed { try? server.thaw() } }
        let claimed = ContinuousClock.now
        // Keyed sends at once, as under load: their claims wait in the pool or on a hung connection.
        let keys = (0..<8).map { "hung-\($0)" }
        let refusals = try await withThrowingTaskGroup(of: TestResponse.self) { group in
            for key in keys { group.addTask { try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: key), timeout: .seconds(30)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for refusal in refusals {
            #expect(refusal.status == 503)
            #expect(try refusal.error().code == "store_unavailable")
        }
        let lookup = try await RawHTTP.exchange(
            port: port, "GET /v1/results/sms/\(Fixtures.smsSeedMessageID) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(lookup.status == 200)
        #expect(IdempotencyTests.sendsReceived(gateway.mock) == sendsBefore, "a keyed send reached SENS while the store hung")
        // Hung past the claims' lease: a claim that the hung statements made only now would hold its key as an
        // unknown outcome for its whole TTL, and no take-back tried within the lease would have seen it.
        try await waitUntil(timeout: .seconds(60)) { ContinuousClock.now - claimed > keyLease + .seconds(1) }

        // Thawed: whatever the hung statements did when they ran at last, every key is free again (nothing claimed
        // for a caller that was told 503, or taken back), and each retry is sent — once.
        try server.thaw()
        thawed = true
        for key in keys {
            try await waitUntil(timeout: .seconds(60)) {
                let retry = try? await RawHTTP.exchange(port: port, IdempotencyTests.send(key: key), timeout: .seconds(30))
                // Never a 409: the key must not be held by a claim nobody was told of.
                #expect(retry?.status != 409, "the retry of \(key) found the key held: \(retry?.text ?? "")")
                return retry?.status == 202
            }
        }
        let replay = try await RawHTTP.exchange(port: port, IdempotencyTests.send(key: keys[0]), timeout: .seconds(30))
        #expect(replay.header("idempotent-replayed") == "true")
        #expect(IdempotencyTests.sendsReceived(gateway.mock) == sendsBefore + keys.count)
        await gateway.stop()
        try? await server.halt()
    }
}

/// A flag one task sets and others read.
private final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { self.value.load(ordering: .relaxed) }
    func set() { self.value.store(true, ordering: .relaxed) }
}
