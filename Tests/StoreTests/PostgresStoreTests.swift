import Logging
import PostgresTestServer
import Store
import Testing

/// What only the fleet's backend does: its URL, several replicas on one database, migrations under a lock, an
/// unreachable server. Against a real PostgreSQL server (the run's throwaway cluster).
@Suite("PostgreSQL store")
struct PostgresStoreTests {
    static func open(_ database: String, port: Int? = nil) async throws -> PostgresStore {
        let server = try await PostgresTestServer.shared()
        let location = PostgresLocation(user: server.user, host: "127.0.0.1", port: port ?? server.port, database: database, tls: .disable)
        return try await PostgresStore.open(location, password: PostgresTestServer.password, poolSize: 8, logger: SQLiteStoreTests.logger)
    }

    @Test("store URLs: user, host, port, database and sslmode; a password in the URL is refused, and never echoed")
    func location() throws {
        let plain = try PostgresLocation(parsing: "postgres://sensgate@db.internal/sensgate")
        #expect(plain == PostgresLocation(user: "sensgate", host: "db.internal", port: 5432, database: "sensgate", tls: .prefer))
        let full = try PostgresLocation(parsing: "postgresql://app@10.0.0.5:6432/notify?sslmode=require")
        #expect(full == PostgresLocation(user: "app", host: "10.0.0.5", port: 6432, database: "notify", tls: .require))
        let v6 = try PostgresLocation(parsing: "postgres://app@[::1]:5433/db?sslmode=verify-full")
        #expect(v6 == PostgresLocation(user: "app", host: "::1", port: 5433, database: "db", tls: .verifyFull))
        #expect(v6.description == "postgres://app@[::1]:5433/db?sslmode=verify-full")
        #expect(full.description == "postgres://app@10.0.0.5:6432/notify?sslmode=require")
        // Percent-escapes in the user and database, as libpq reads them.
        #expect(try PostgresLocation(parsing: "postgres://s%67@h/sg%20db") == PostgresLocation(user: "sg", host: "h", database: "sg db"))
        for bad in [
            "mysql://a@b/c", "postgres://b/c", "postgres://a@b", "postgres://a@/c", "postgres://a@b/", "postgres://a@b:0/c",
            "postgres://a@b:99999/c", "postgres://a@b:x/c", "postgres://a@b/c?sslmode=maybe", "postgres://a@b/c?connect_timeout=3",
            // Found by an outside test: a fragment, an unclosed or misplaced IPv6 bracket, sslmode twice, a bad escape.
            "postgres://a@b/c#frag", "postgres://a@[::1/c", "postgres://a@[::1]x/c", "postgres://a@b]/c",
            "postgres://a@b/c?sslmode=disable&sslmode=require", "postgres://a@b/c%2", "postgres://a@b/c%zz", "postgres://a@b/c%ff", "postgres://a@b/c%00",
        ] {
            #expect(throws: StoreError.self, "\(bad)") { try PostgresLocation(parsing: bad) }
        }
        do {
            _ = try PostgresLocation(parsing: "postgres://app:hunter2@db/notify")
            Issue.record("a password in the URL was accepted")
        } catch {
            #expect(error.message.contains("password") && !error.message.contains("hunter2"))
        }
    }

    @Test("four replicas starting at once on a new database: one creates the schema, all open it")
    func concurrentMigration() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<4 { group.addTask { try await Self.open(database) } }
            return try await group.reduce(into: [PostgresStore]()) { $0.append($1) }
        }
        #expect(stores.count == 4)
        #expect(try await server.psql(database, "SELECT version FROM sensgate_schema_version") == "\(PostgresStore.schemaVersion)\n")
        for store in stores { await store.close() }
        // A database a newer sensgate migrated is left alone.
        try await server.psql(database, "UPDATE sensgate_schema_version SET version = 99")
        await #expect(throws: StoreError.self) { try await Self.open(database) }
    }

    @Test("two replicas claiming one key at once, 25 times each: one send; due work claimed by both is never handed to both")
    func replicas() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let a = try await Self.open(database)
        let b = try await Self.open(database)
        let key = IdempotencyKey(caller: "orders", key: "shared", fingerprint: "f")
        let claims = try await withThrowingTaskGroup(of: KeyClaim.self) { group in
            for index in 0..<50 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask { try await store.claimKey(key, now: 1_000, lease: 30_000, ttl: 86_400_000) }
            }
            return try await group.reduce(into: [KeyClaim]()) { $0.append($1) }
        }
        #expect(claims.filter { if case .claimed = $0 { true } else { false } }.count == 1)
        #expect(claims.filter { $0 == .inProgress }.count == 49)

        for index in 0..<200 { try await (index.isMultiple(of: 2) ? a : b).track(SQLiteStoreTests.request("R-\(index)")) }
        let handedOut = try await withThrowingTaskGroup(of: [String].self) { group in
            for index in 0..<10 {
                let store = index.isMultiple(of: 2) ? a : b
                group.addTask { try await store.claimDueRequests(now: 3_000, limit: 25, lease: 30_000).map(\.requestId) }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(handedOut.count == 200)
        #expect(Set(handedOut).count == 200)
        await a.close()
        await b.close()
    }

    @Test("a key row another session holds locked (a replica cut off mid-transaction): the claim fails within the lock timeout")
    func lockedKey() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let store = try await Self.open(database)
        let key = IdempotencyKey(caller: "orders", key: "held", fingerprint: "f")
        // An expired key: claiming it again needs its row's lock (a live key is read without one).
        guard case .claimed(let claim) = try await store.claimKey(key, now: 1_000, lease: 5_000, ttl: 10_000) else {
            Issue.record("not claimed")
            return
        }
        try await store.settleKey(claim, as: .unknown, now: 1_000)
        let holder = Task {
            try? await server.psql(database, "BEGIN; SELECT 1 FROM idempotency_keys WHERE key = 'held' FOR UPDATE; SELECT pg_sleep(20); COMMIT;")
        }
        defer { holder.cancel() }
        // Until the other session holds the row.
        for _ in 0..<500 {
            let sleeping = try await server.psql(
                database, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND state = 'active' AND pid <> pg_backend_pid()")
            if sleeping.hasPrefix("1") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let start = ContinuousClock.now
        await #expect(throws: StoreError.self) { try await store.claimKey(key, now: 20_000, lease: 5_000, ttl: 10_000) }
        #expect(ContinuousClock.now - start < .seconds(12))
        await store.close()
    }

    @Test("a server that is not there: opening fails with a reason within the connect timeout, never hangs")
    func unreachable() async throws {
        let start = ContinuousClock.now
        do {
            let store = try await Self.open("nowhere", port: 1)
            await store.close()
            Issue.record("opened a store on port 1")
        } catch let error as StoreError {
            #expect(error.isTransient)
            #expect(error.message.contains("PostgreSQL"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test("a version 1 database (before heartbeats) is migrated at start, its rows kept")
    func migrationFromVersion1() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let store = try await Self.open(database)
        try await store.track(TrackedRequest(requestId: "R-1", channel: "sms", serviceId: "S", caller: "a", acceptedAt: 1, nextPollAt: 2))
        await store.close()
        // As version 1 left it.
        try await server.psql(database, "DROP TABLE sensgate_replicas; UPDATE sensgate_schema_version SET version = 1")
        let migrated = try await Self.open(database)
        #expect(try await server.psql(database, "SELECT version FROM sensgate_schema_version") == "2\n")
        #expect(try await migrated.request(id: "R-1")?.0.requestId == "R-1")
        #expect(try await migrated.heartbeat(replica: "a", liveFor: 3_000) == 1)
        await migrated.close()
    }

    @Test("replicas heartbeat by the database's clock: each counts the live ones, a replica that left or went quiet is not counted")
    func heartbeats() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let a = try await Self.open(database)
        let b = try await Self.open(database)
        #expect(try await a.heartbeat(replica: "a", liveFor: 3_000) == 1)
        #expect(try await b.heartbeat(replica: "b", liveFor: 3_000) == 2)
        #expect(try await a.heartbeat(replica: "a", liveFor: 3_000) == 2)
        #expect(try await b.heartbeat(replica: "c", liveFor: 3_000) == 3)
        // c goes quiet (killed): ten seconds ago, by the database's clock, it is not counted.
        try await server.psql(database, "UPDATE sensgate_replicas SET seen_at = seen_at - 10000 WHERE id = 'c'")
        #expect(try await a.heartbeat(replica: "a", liveFor: 3_000) == 2)
        // b leaves (a graceful stop): at once.
        try await b.leave(replica: "b")
        #expect(try await a.heartbeat(replica: "a", liveFor: 3_000) == 1)
        // A replica silent for over an hour is forgotten.
        try await server.psql(database, "UPDATE sensgate_replicas SET seen_at = seen_at - 4000000 WHERE id = 'c'")
        _ = try await a.heartbeat(replica: "a", liveFor: 3_000)
        #expect(try await server.psql(database, "SELECT id FROM sensgate_replicas ORDER BY id") == "a\n")
        await a.close()
        await b.close()
    }

    @Test("a wrong password, or a database that does not exist: opening fails at once with PostgreSQL's own reason")
    func refusedAtOpen() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.makeDatabase()
        let start = ContinuousClock.now
        do {
            let location = PostgresLocation(user: server.user, host: "127.0.0.1", port: server.port, database: database, tls: .disable)
            let store = try await PostgresStore.open(location, password: "not-the-password", poolSize: 2, logger: SQLiteStoreTests.logger)
            await store.close()
            Issue.record("opened with a wrong password")
        } catch {
            #expect(error.message.contains("28P01"), "\(error)")
            #expect(!error.message.contains("not-the-password"))
        }
        do {
            let store = try await Self.open("no_such_database")
            await store.close()
            Issue.record("opened a database that does not exist")
        } catch let error as StoreError {
            #expect(error.message.contains("3D000"), "\(error)")
        }
        // Two refusals, not two operation timeouts.
        #expect(ContinuousClock.now - start < .seconds(8))
    }
}
