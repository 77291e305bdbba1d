import Logging
import NIOPosix
import SQLiteNIO
import Store
import Testing

/// Idempotency keys (PRODUCT.md §7) in both backends: a real SQLite file and a real PostgreSQL server.
@Suite("Store: idempotency keys")
struct IdempotencyKeyTests {
    static let key = IdempotencyKey(caller: "orders", key: "k-1", fingerprint: "f-1")
    static let lease: StoreTime = 30_000
    static let ttl: StoreTime = 86_400_000
    static let answer = StoredAnswer(
        status: 202, contentType: "application/json; charset=utf-8", retryAfterSeconds: nil,
        headers: [StoredHeader(name: "X-Sensgate-Tracking", value: "R-1")], body: Array(#"{"requestId":"R-1","statusCode":"202"}"#.utf8))

    static func claimed(_ claim: KeyClaim) throws -> ClaimedKey {
        guard case .claimed(let claimed) = claim else {
            Issue.record("not claimed: \(claim)")
            throw StoreError.corrupt("not claimed")
        }
        return claimed
    }

    @Test("first use claims; a second is in progress until the answer is settled, then replays it exactly", arguments: Backend.allCases)
    func claimThenReplay(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let claim = try Self.claimed(try await store.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            #expect(try await store.claimKey(Self.key, now: 1_001, lease: Self.lease, ttl: Self.ttl) == .inProgress)
            try await store.settleKey(claim, as: .answered(Self.answer, tracking: nil), now: 1_000)
            #expect(try await store.claimKey(Self.key, now: 1_002, lease: Self.lease, ttl: Self.ttl) == .answered(Self.answer))
            // Another request under the key; the same key of another caller is another key.
            var other = Self.key
            other.fingerprint = "f-2"
            #expect(try await store.claimKey(other, now: 1_003, lease: Self.lease, ttl: Self.ttl) == .mismatch)
            var otherCaller = Self.key
            otherCaller.caller = "billing"
            _ = try Self.claimed(try await store.claimKey(otherCaller, now: 1_004, lease: Self.lease, ttl: Self.ttl))
            // A late settlement under a claim that is no longer the key's writes nothing.
            try await store.settleKey(claim, as: .unknown, now: 1_000)
            #expect(try await store.claimKey(Self.key, now: 1_005, lease: Self.lease, ttl: Self.ttl) == .answered(Self.answer))
            #expect(try await store.counts().keys == 2)
            await store.close()
        }
    }

    @Test("an unknown outcome stays unknown; a lapsed claim is unknown; a released key is claimed again", arguments: Backend.allCases)
    func unknownAndReleased(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let first = try Self.claimed(try await store.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            try await store.settleKey(first, as: .unknown, now: 1_000)
            #expect(try await store.claimKey(Self.key, now: 2_000, lease: Self.lease, ttl: Self.ttl) == .outcomeUnknown)

            var lapsing = Self.key
            lapsing.key = "k-lapsing"
            _ = try Self.claimed(try await store.claimKey(lapsing, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            #expect(try await store.claimKey(lapsing, now: 1_000 + Self.lease - 1, lease: Self.lease, ttl: Self.ttl) == .inProgress)
            #expect(try await store.claimKey(lapsing, now: 1_000 + Self.lease, lease: Self.lease, ttl: Self.ttl) == .outcomeUnknown)

            var released = Self.key
            released.key = "k-released"
            let claim = try Self.claimed(try await store.claimKey(released, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            try await store.settleKey(claim, as: .released, now: 1_000)
            let again = try Self.claimed(try await store.claimKey(released, now: 1_001, lease: Self.lease, ttl: Self.ttl))
            #expect(again.token != claim.token)
            await store.close()
        }
    }

    @Test("a key is kept ttl from its settlement (or its lapsed lease), free again before it is swept; sweeps are bounded", arguments: Backend.allCases)
    func expiry(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let claim = try Self.claimed(try await store.claimKey(Self.key, now: 1_000, lease: 5_000, ttl: 10_000))
            try await store.settleKey(claim, as: .answered(Self.answer, tracking: nil), now: 1_000)
            #expect(try await store.claimKey(Self.key, now: 10_999, lease: 5_000, ttl: 10_000) == .answered(Self.answer))
            var mismatched = Self.key
            mismatched.fingerprint = "f-new"
            // Expired: even another request may use the key now.
            let reused = try Self.claimed(try await store.claimKey(mismatched, now: 11_000, lease: 5_000, ttl: 10_000))
            try await store.settleKey(reused, as: .unknown, now: 11_000)
            for index in 0..<5 {
                var key = Self.key
                key.key = "sweep-\(index)"
                let swept = try Self.claimed(try await store.claimKey(key, now: 1_000, lease: 5_000, ttl: 10_000))
                try await store.settleKey(swept, as: .unknown, now: 1_000)
            }
            #expect(try await store.counts().keys == 6)
            #expect(try await store.sweepKeys(now: 11_000, limit: 3) == 3)
            #expect(try await store.sweepKeys(now: 11_000, limit: 3) == 2)
            #expect(try await store.sweepKeys(now: 11_000, limit: 3) == 0)
            // The reused key expires 10 s after its new settlement.
            #expect(try await store.counts().keys == 1)
            #expect(try await store.sweepKeys(now: 21_000, limit: 3) == 1)

            // An answer that comes after more than the TTL (a slow SENS, a short idempotency-ttl) is kept the TTL from
            // when it came: a retry right after it replays, never sends again.
            var slow = Self.key
            slow.key = "k-slow-answer"
            let slowClaim = try Self.claimed(try await store.claimKey(slow, now: 30_000, lease: 20_000, ttl: 10_000))
            #expect(try await store.sweepKeys(now: 45_000, limit: 3) == 0)
            #expect(try await store.claimKey(slow, now: 44_999, lease: 20_000, ttl: 10_000) == .inProgress)
            try await store.settleKey(slowClaim, as: .answered(Self.answer, tracking: nil), now: 45_000)
            #expect(try await store.claimKey(slow, now: 45_001, lease: 20_000, ttl: 10_000) == .answered(Self.answer))
            #expect(try await store.claimKey(slow, now: 54_999, lease: 20_000, ttl: 10_000) == .answered(Self.answer))
            #expect(try await store.sweepKeys(now: 55_000, limit: 3) == 1)

            // A claim never settled (its process died) is outcome unknown for the TTL after its lease lapsed.
            var lapsed = Self.key
            lapsed.key = "k-lapsed"
            _ = try Self.claimed(try await store.claimKey(lapsed, now: 100_000, lease: 20_000, ttl: 10_000))
            #expect(try await store.sweepKeys(now: 120_000, limit: 3) == 0)
            #expect(try await store.claimKey(lapsed, now: 129_999, lease: 20_000, ttl: 10_000) == .outcomeUnknown)
            #expect(try await store.sweepKeys(now: 130_000, limit: 3) == 1)
            await store.close()
        }
    }

    @Test("a tracked answer and its tracking record are written together", arguments: Backend.allCases)
    func trackedSettlement(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let claim = try Self.claimed(try await store.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            try await store.settleKey(claim, as: .answered(Self.answer, tracking: SQLiteStoreTests.request("R-1")), now: 1_000)
            #expect(try await store.request(id: "R-1")?.0 == SQLiteStoreTests.request("R-1"))
            // A claim taken over (it expired and the key was claimed again) writes no answer; the send it made stands,
            // so its tracking record is written all the same.
            var later = Self.key
            later.key = "k-taken-over"
            let stale = try Self.claimed(try await store.claimKey(later, now: 1_000, lease: 5_000, ttl: 10_000))
            let current = try Self.claimed(try await store.claimKey(later, now: 16_000, lease: 5_000, ttl: 10_000))
            try await store.settleKey(stale, as: .answered(Self.answer, tracking: SQLiteStoreTests.request("R-2")), now: 16_001)
            #expect(try await store.request(id: "R-2")?.0 == SQLiteStoreTests.request("R-2"))
            #expect(try await store.claimKey(later, now: 16_002, lease: 5_000, ttl: 10_000) == .inProgress)
            try await store.settleKey(current, as: .unknown, now: 16_003)
            #expect(try await store.claimKey(later, now: 16_004, lease: 5_000, ttl: 10_000) == .outcomeUnknown)
            await store.close()
        }
    }

    @Test("fifty claims of one key at once: exactly one is claimed, the others see it in progress", arguments: Backend.allCases)
    func concurrentClaims(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let claims = try await withThrowingTaskGroup(of: KeyClaim.self) { group in
                for _ in 0..<50 { group.addTask { try await store.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl) } }
                var claims: [KeyClaim] = []
                for try await claim in group { claims.append(claim) }
                return claims
            }
            #expect(claims.filter { if case .claimed = $0 { true } else { false } }.count == 1)
            #expect(claims.filter { $0 == .inProgress }.count == 49)
            await store.close()
        }
    }

    @Test("keys survive a restart; a send in flight when the process stopped is unknown after it (serve releases claims)")
    func restart() async throws {
        try await SQLiteStoreTests.withDirectory { directory in
            let store = try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger)
            let answered = try Self.claimed(try await store.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            try await store.settleKey(answered, as: .answered(Self.answer, tracking: nil), now: 1_000)
            var inFlight = Self.key
            inFlight.key = "k-in-flight"
            _ = try Self.claimed(try await store.claimKey(inFlight, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            await store.close()
            let reopened = try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger, releasingClaims: true)
            #expect(try await reopened.claimKey(Self.key, now: 1_001, lease: Self.lease, ttl: Self.ttl) == .answered(Self.answer))
            // Well inside its lease, but the process that held it is gone.
            #expect(try await reopened.claimKey(inFlight, now: 1_001, lease: Self.lease, ttl: Self.ttl) == .outcomeUnknown)
            await reopened.close()
        }
    }

    @Test("a version 1 store (the previous release's) is migrated on open, its rows kept")
    func migratesVersion1() async throws {
        try await SQLiteStoreTests.withDirectory { directory in
            let store = try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger)
            try await store.track(SQLiteStoreTests.request("R-old"))
            await store.close()
            // Version 1 is version 2 without the key table.
            let threads = NIOThreadPool(numberOfThreads: 1)
            threads.start()
            let connection = try await SQLiteConnection.open(
                storage: .file(path: directory + "/sensgate.sqlite"), threadPool: threads, logger: SQLiteStoreTests.logger,
                on: MultiThreadedEventLoopGroup.singleton.any())
            _ = try await connection.query("DROP TABLE idempotency_keys")
            _ = try await connection.query("UPDATE schema_version SET version = 1")
            try await connection.close()
            try await threads.shutdownGracefully()

            let migrated = try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger)
            #expect(try await migrated.request(id: "R-old") != nil)
            _ = try Self.claimed(try await migrated.claimKey(Self.key, now: 1_000, lease: Self.lease, ttl: Self.ttl))
            await migrated.close()
            let version = try await Self.schemaVersion(directory)
            #expect(version == SQLiteStore.schemaVersion)
        }
    }

    static func schemaVersion(_ directory: String) async throws -> Int? {
        let threads = NIOThreadPool(numberOfThreads: 1)
        threads.start()
        let connection = try await SQLiteConnection.open(
            storage: .file(path: directory + "/sensgate.sqlite"), threadPool: threads, logger: SQLiteStoreTests.logger,
            on: MultiThreadedEventLoopGroup.singleton.any())
        let version = try await connection.query("SELECT version FROM schema_version").first?.column("version")?.integer
        try await connection.close()
        try await threads.shutdownGracefully()
        return version.map { Int($0) }
    }
}
