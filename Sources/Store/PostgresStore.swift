public import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The fleet's backend of ``DeliveryStore`` (PRODUCT.md §8): one PostgreSQL database shared by every replica, through
/// a connection pool (postgres-nio's `PostgresClient`). Every operation is one transaction or one statement; due work is
/// claimed with `FOR UPDATE SKIP LOCKED` under a lease, so two replicas never claim the same row and a dead replica's
/// claims are taken over when they lapse; an idempotency key is claimed by one `INSERT … ON CONFLICT` (two replicas
/// cannot both claim it).
///
/// Unlike the embedded store there is no group commit: PostgreSQL runs transactions from many connections at once
/// (and groups their WAL flushes itself), so each operation takes a pooled connection of its own.
public final class PostgresStore: DeliveryStore {
    /// Replicas of a fleet.
    public var isShared: Bool { true }

    /// The schema this build writes (its own numbering, kept in `sensgate_schema_version`). Version 1: tracked
    /// requests, their messages, the event outbox, idempotency keys. Version 2: replicas' heartbeats.
    public static let schemaVersion = 2

    private let client: PostgresClient
    private let running: Task<Void, Never>
    /// Operations under way, waited for by ``close()`` (a write that outlived its caller's deadline still lands).
    private let inFlight = Mutex(0)
    /// Set by ``close()``: background retries stop.
    private let closing = Mutex(false)
    var isClosing: Bool { self.closing.withLock { $0 } }
    /// Whether the database answers lately (operations fail at once while it does not).
    private let outage = Mutex(OutageGate())
    let logger: Logger

    private init(client: PostgresClient, running: Task<Void, Never>, logger: Logger) {
        self.client = client
        self.running = running
        self.logger = logger
    }

    /// Connects to the database `location` names, and creates or migrates the schema (under an advisory lock: two
    /// replicas starting together do not both migrate).
    /// - Parameters:
    ///   - password: From `store-password-file` or `PGPASSWORD` (never from the URL, which is logged).
    ///   - poolSize: The most connections this replica opens (`store-pool-size`).
    /// - Throws: ``StoreError`` when the database cannot be reached or holds a newer schema.
    public static func open(_ location: PostgresLocation, password: String?, poolSize: Int, logger: Logger) async throws(StoreError) -> PostgresStore {
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: password, database: location.database,
            tls: Self.tls(location.tls))
        configuration.options.maximumConnections = max(1, poolSize)
        configuration.options.connectTimeout = .seconds(5)
        // The server ends what the client's timeout cannot (postgres-nio does not cancel a statement under way): a
        // statement or a lock wait that runs long (a row another replica's dead session still holds), and a session
        // left inside a transaction by a replica that vanished, whose locks would otherwise hold for hours.
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "10000"), ("lock_timeout", "5000"), ("idle_in_transaction_session_timeout", "30000"),
        ]
        // postgres-nio at trace logs every message from the server, rows included (message content): never below info.
        var clientLogger = logger
        clientLogger.logLevel = max(logger.logLevel, .info)
        try await Self.probe(location, password: password, logger: clientLogger)
        let client = PostgresClient(configuration: configuration, backgroundLogger: clientLogger)
        let running = Task { await client.run() }
        let store = PostgresStore(client: client, running: running, logger: clientLogger)
        do {
            try await store.prepare()
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    /// Whether to talk TLS to the database (`nil`: not), whether it is required, and how the server is checked:
    /// `prefer` and `require` encrypt without checking who answers (libpq's meaning); `verify-full` checks the
    /// certificate against the system's trust store and the name.
    private static func tlsSettings(_ mode: PostgresLocation.TLSMode) -> (configuration: TLSConfiguration, required: Bool)? {
        var checked = TLSConfiguration.makeClientConfiguration()
        var unchecked = checked
        unchecked.certificateVerification = .none
        switch mode {
        case .disable: return nil
        case .prefer: return (unchecked, false)
        case .require: return (unchecked, true)
        case .verifyFull:
            checked.certificateVerification = .fullVerification
            return (checked, true)
        }
    }

    private static func tls(_ mode: PostgresLocation.TLSMode) -> PostgresClient.Configuration.TLS {
        guard let (configuration, required) = Self.tlsSettings(mode) else { return .disable }
        return required ? .require(configuration) : .prefer(configuration)
    }

    /// Connects once, outside the pool, and hangs up: a wrong password, database, port or certificate fails the start
    /// at once with PostgreSQL's own reason (SQLSTATE and message), where the pool would retry it quietly until the
    /// operation timeout.
    private static func probe(_ location: PostgresLocation, password: String?, logger: Logger) async throws(StoreError) {
        do {
            let tls: PostgresConnection.Configuration.TLS
            switch Self.tlsSettings(location.tls) {
            case nil: tls = .disable
            case let (configuration, required)?:
                let context = try NIOSSLContext(configuration: configuration)
                tls = required ? .require(context) : .prefer(context)
            }
            var configuration = PostgresConnection.Configuration(
                host: location.host, port: location.port, username: location.user, password: password, database: location.database, tls: tls)
            configuration.options.connectTimeout = .seconds(5)
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try await connection.close()
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Waits (up to ``operationTimeout``) for the operations under way, then closes the pool.
    public func close() async {
        self.closing.withLock { $0 = true }
        let deadline = ContinuousClock.now + Self.operationTimeout
        while self.inFlight.withLock({ $0 }) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        self.running.cancel()
        _ = await self.running.value
    }

    // MARK: Schema

    /// An arbitrary, fixed key for `pg_advisory_xact_lock`: every sensgate migrating this database takes the same lock.
    private static let migrationLock: Int64 = 0x5345_4E53_4741_5445  // "SENSGATE"

    private func prepare() async throws(StoreError) {
        // Already current (every start but the first of a version): nothing to lock or create, so a role without
        // CREATE on the schema, and the operator tools, open it as it is.
        let current = try await self.connection { connection -> Bool in
            guard let row = try await Self.rows(
                connection, "SELECT to_regclass('sensgate_schema_version') IS NOT NULL AS present", self.logger
            ).first, try row.decode(Bool.self) else { return false }
            let version = try await Self.rows(connection, "SELECT version FROM sensgate_schema_version", self.logger).first
            return try version?.decode(Int.self) == Self.schemaVersion
        }
        if current { return }
        try await self.transaction { connection in
            try await Self.run(connection, "SELECT pg_advisory_xact_lock(\(Self.migrationLock))", self.logger)
            try await Self.run(connection, "CREATE TABLE IF NOT EXISTS sensgate_schema_version (version INTEGER NOT NULL)", self.logger)
            let found = try await Self.rows(connection, "SELECT version FROM sensgate_schema_version", self.logger).first
                .map { try $0.makeRandomAccess()["version"].decode(Int.self) }
            switch found {
            case nil:
                for statement in Self.schema + Self.migrations.joined() { try await Self.run(connection, PostgresQuery(unsafeSQL: statement), self.logger) }
                try await Self.run(connection, "INSERT INTO sensgate_schema_version (version) VALUES (\(Self.schemaVersion))", self.logger)
            case let version? where version > Self.schemaVersion:
                throw StoreError.schemaTooNew(found: version, known: Self.schemaVersion)
            case let version? where version < 1:
                throw StoreError.corrupt("the store's schema version is \(version)")
            case Self.schemaVersion?:
                break
            case let version?:
                // Each later version's statements, in order, in this one transaction.
                for statement in Self.migrations.dropFirst(version - 1).joined() {
                    try await Self.run(connection, PostgresQuery(unsafeSQL: statement), self.logger)
                }
                try await Self.run(connection, "UPDATE sensgate_schema_version SET version = \(Self.schemaVersion)", self.logger)
            }
        }
    }

    /// Version 1. Times are milliseconds since the Unix epoch (``StoreTime``), as in the embedded store.
    private static let schema = [
        """
        CREATE TABLE tracked_requests (
            request_id TEXT PRIMARY KEY, channel TEXT NOT NULL, service_id TEXT NOT NULL, caller TEXT NOT NULL,
            accepted_at BIGINT NOT NULL, reserve_at BIGINT, next_poll_at BIGINT NOT NULL, polls INTEGER NOT NULL,
            state TEXT NOT NULL, claimed_until BIGINT NOT NULL DEFAULT 0, claim_token TEXT)
        """,
        "CREATE INDEX tracked_requests_due ON tracked_requests (state, next_poll_at)",
        """
        CREATE TABLE messages (
            request_id TEXT NOT NULL REFERENCES tracked_requests (request_id), message_id TEXT NOT NULL,
            final BOOLEAN NOT NULL, result TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (request_id, message_id))
        """,
        """
        CREATE TABLE events (
            id TEXT PRIMARY KEY, request_id TEXT NOT NULL, message_id TEXT NOT NULL, caller TEXT NOT NULL, body TEXT NOT NULL,
            created_at BIGINT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,
            claimed_until BIGINT NOT NULL DEFAULT 0, claim_token TEXT, state TEXT NOT NULL, UNIQUE (request_id, message_id))
        """,
        "CREATE INDEX events_due ON events (state, next_attempt_at)",
        // state: in_progress (claimed until claimed_until), answered (the answer's columns set), unknown.
        """
        CREATE TABLE idempotency_keys (
            caller TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL, claim_token TEXT,
            claimed_until BIGINT NOT NULL, status INTEGER, content_type TEXT, retry_after BIGINT, headers TEXT, body BYTEA,
            created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (caller, key))
        """,
        "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
    ]

    /// The statements that take version `n + 1` to `n + 2`, at index `n` (version 1 is ``schema``).
    private static let migrations: [[String]] = [
        // 2: each replica's last heartbeat, by the database's clock.
        ["CREATE TABLE sensgate_replicas (id TEXT PRIMARY KEY, seen_at BIGINT NOT NULL)"]
    ]

    // MARK: Tracked requests

    public func track(_ request: TrackedRequest) async throws(StoreError) {
        try await self.connection { connection in try await self.insert(request, on: connection) }
    }

    func insert(_ request: TrackedRequest, on connection: PostgresConnection) async throws {
        try await Self.run(
            connection,
            """
            INSERT INTO tracked_requests (request_id, channel, service_id, caller, accepted_at, reserve_at, next_poll_at, polls, state)
            VALUES (\(request.requestId), \(request.channel), \(request.serviceId), \(request.caller), \(request.acceptedAt),
                \(request.reserveAt), \(request.nextPollAt), \(request.polls), \(request.state.rawValue))
            ON CONFLICT (request_id) DO NOTHING
            """, self.logger)
    }

    public func request(id: String) async throws(StoreError) -> (TrackedRequest, [StoredResult])? {
        try await self.transaction { connection -> (TrackedRequest, [StoredResult])? in
            // One snapshot for the request and its results (READ COMMITTED takes one per statement).
            try await Self.run(connection, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", self.logger)
            guard let row = try await Self.rows(connection, "SELECT * FROM tracked_requests WHERE request_id = \(id)", self.logger).first
            else { return nil }
            let request = try Self.trackedRequest(row)
            var results: [StoredResult] = []
            for message in try await Self.rows(
                connection, "SELECT message_id, final, result FROM messages WHERE request_id = \(id) ORDER BY message_id", self.logger)
            {
                let (messageId, final, result) = try message.decode((String, Bool, String).self)
                results.append(StoredResult(messageId: messageId, isFinal: final, json: result))
            }
            return (request, results)
        }
    }

    public func claimDueRequests(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [TrackedRequest] {
        try await self.claim(
            table: "tracked_requests", key: "request_id", state: "tracking", dueAt: "next_poll_at", now: now, limit: limit, lease: lease
        ) { row, claim in
            var request = try Self.trackedRequest(row)
            request.claim = claim
            return request
        }.sorted { ($0.nextPollAt, $0.requestId) < ($1.nextPollAt, $1.requestId) }
    }

    public func recordPoll(_ request: TrackedRequest, outcome: PollOutcome, now: StoreTime) async throws(StoreError) -> Bool {
        let requestId = request.requestId
        guard let claim = request.claim else { return false }
        return try await self.transaction { connection -> Bool in
            // The row stays locked to the end of the transaction: no other replica's poll interleaves.
            let held = try await Self.rows(
                connection,
                "SELECT 1 FROM tracked_requests WHERE request_id = \(requestId) AND claim_token = \(claim) AND state = 'tracking' FOR UPDATE",
                self.logger)
            guard !held.isEmpty else { return false }
            for result in outcome.results {
                let before = try await Self.rows(
                    connection, "SELECT final FROM messages WHERE request_id = \(requestId) AND message_id = \(result.messageId)", self.logger
                ).first
                // A final result never changes again (and its event exists already).
                if let before, try before.decode(Bool.self) { continue }
                try await Self.run(
                    connection,
                    """
                    INSERT INTO messages (request_id, message_id, final, result, updated_at)
                    VALUES (\(requestId), \(result.messageId), \(result.isFinal), \(result.json), \(now))
                    ON CONFLICT (request_id, message_id) DO UPDATE SET final = excluded.final, result = excluded.result,
                        updated_at = excluded.updated_at
                    """, self.logger)
                guard result.isFinal, outcome.makesEvents else { continue }
                // The outbox: the event is committed with the result that causes it.
                let eventId = StoredEvent.id(requestId: requestId, messageId: result.messageId)
                try await Self.run(
                    connection,
                    """
                    INSERT INTO events (id, request_id, message_id, caller, body, created_at, next_attempt_at, state)
                    SELECT \(eventId), request_id, \(result.messageId), caller, \(outcome.eventBody(result)), \(now), \(now), 'pending'
                    FROM tracked_requests WHERE request_id = \(requestId)
                    ON CONFLICT DO NOTHING
                    """, self.logger)
            }
            try await Self.run(
                connection,
                """
                UPDATE tracked_requests SET state = \(outcome.state.rawValue), next_poll_at = \(outcome.nextPollAt), polls = polls + 1,
                    claimed_until = 0, claim_token = NULL
                WHERE request_id = \(requestId)
                """, self.logger)
            return true
        }
    }

    // MARK: Events

    public func claimDueEvents(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [StoredEvent] {
        try await self.claim(
            table: "events", key: "id", state: "pending", dueAt: "next_attempt_at", now: now, limit: limit, lease: lease
        ) { row, claim in
            var event = try Self.event(row)
            event.claim = claim
            return event
        }.sorted { ($0.nextAttemptAt, $0.id) < ($1.nextAttemptAt, $1.id) }
    }

    /// Claims due rows under a lease in one statement: those in `state` whose `dueAt` time has come and whose earlier
    /// claim has lapsed, oldest first; rows another replica holds locked are skipped, not waited for.
    /// - Parameter decode: The row as claimed, with the claim's token.
    private func claim<Item: Sendable>(
        table: StaticString, key: StaticString, state: StaticString, dueAt: StaticString, now: StoreTime, limit: Int, lease: StoreTime,
        decode: @escaping @Sendable (PostgresRow, String) throws -> Item
    ) async throws(StoreError) -> [Item] {
        let claim = ClaimToken.make()
        let (table, key, state, dueAt) = ("\(table)", "\(key)", "\(state)", "\(dueAt)")
        return try await self.connection { connection in
            let rows = try await Self.rows(
                connection,
                """
                UPDATE \(unescaped: table) SET claimed_until = \(now + lease), claim_token = \(claim)
                WHERE \(unescaped: key) IN (
                    SELECT \(unescaped: key) FROM \(unescaped: table)
                    WHERE state = \(state) AND \(unescaped: dueAt) <= \(now) AND claimed_until <= \(now)
                    ORDER BY \(unescaped: dueAt), \(unescaped: key) LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING *
                """, self.logger)
            return try rows.map { try decode($0, claim) }
        }
    }

    public func recordAttempt(_ event: StoredEvent, delivered: Bool, retryAt: StoreTime?) async throws(StoreError) -> Bool {
        guard let claim = event.claim else { return false }
        let state: StoredEvent.State = delivered ? .delivered : (retryAt == nil ? .failed : .pending)
        return try await self.connection { connection in
            let updated = try await Self.rows(
                connection,
                """
                UPDATE events SET state = \(state.rawValue), attempts = attempts + 1,
                    next_attempt_at = COALESCE(\(retryAt)::BIGINT, next_attempt_at), claimed_until = 0, claim_token = NULL
                WHERE id = \(event.id) AND claim_token = \(claim) AND state = 'pending'
                RETURNING 1
                """, self.logger)
            return !updated.isEmpty
        }
    }

    public func events(state: StoredEvent.State, caller: String?, limit: Int) async throws(StoreError) -> [StoredEvent] {
        try await self.connection { connection in
            try await Self.rows(
                connection,
                """
                SELECT * FROM events WHERE state = \(state.rawValue) AND (\(caller)::TEXT IS NULL OR caller = \(caller)::TEXT)
                ORDER BY created_at, id LIMIT \(limit)
                """, self.logger
            ).map(Self.event)
        }
    }

    public func redeliver(eventId: String, caller: String?, now: StoreTime) async throws(StoreError) -> Bool {
        try await self.connection { connection in
            let updated = try await Self.rows(
                connection,
                """
                UPDATE events SET state = 'pending', next_attempt_at = \(now), created_at = \(now), attempts = 0, claimed_until = 0,
                    claim_token = NULL
                WHERE id = \(eventId) AND state = 'failed' AND (\(caller)::TEXT IS NULL OR caller = \(caller)::TEXT)
                RETURNING 1
                """, self.logger)
            return !updated.isEmpty
        }
    }

    // MARK: Replicas

    /// How long a replica's row is kept after its last heartbeat (one that never said goodbye: killed).
    private static let forgetReplicasAfter: StoreTime = 3_600_000

    public func heartbeat(replica: String, liveFor: StoreTime) async throws(StoreError) -> Int {
        // The one operation that tries the database while it does not answer (see OutageGate).
        try await self.connection(.probe) { connection in
            // One statement: the heartbeat, a sweep of long-dead replicas, and the count of the others alive (a
            // statement does not see its own upsert, hence `+ 1`).
            let row = try await Self.rows(
                connection,
                """
                WITH clock AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now),
                beat AS (
                    INSERT INTO sensgate_replicas (id, seen_at) SELECT \(replica), now FROM clock
                    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at),
                gone AS (DELETE FROM sensgate_replicas WHERE seen_at < (SELECT now FROM clock) - \(Self.forgetReplicasAfter))
                SELECT COUNT(*)::BIGINT FROM sensgate_replicas, clock WHERE id <> \(replica) AND seen_at >= now - \(liveFor)
                """, self.logger
            ).first
            return Int(try row?.decode(Int64.self) ?? 0) + 1
        }
    }

    public func leave(replica: String) async throws(StoreError) {
        try await self.connection { connection in
            try await Self.run(connection, "DELETE FROM sensgate_replicas WHERE id = \(replica)", self.logger)
        }
    }

    public func counts() async throws(StoreError) -> StoreCounts {
        try await self.transaction { connection -> StoreCounts in
            try await Self.run(connection, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", self.logger)
            var counts = StoreCounts(requests: [:], events: [:])
            if let row = try await Self.rows(connection, "SELECT COUNT(*)::BIGINT AS n FROM idempotency_keys", self.logger).first {
                counts.keys = Int(try row.decode(Int64.self))
            }
            for row in try await Self.rows(connection, "SELECT state, COUNT(*)::BIGINT FROM tracked_requests GROUP BY state", self.logger) {
                let (name, count) = try row.decode((String, Int64).self)
                guard let state = TrackedRequest.State(rawValue: name) else { continue }
                counts.requests[state] = Int(count)
            }
            for row in try await Self.rows(connection, "SELECT state, COUNT(*)::BIGINT FROM events GROUP BY state", self.logger) {
                let (name, count) = try row.decode((String, Int64).self)
                guard let state = StoredEvent.State(rawValue: name) else { continue }
                counts.events[state] = Int(count)
            }
            return counts
        }
    }

    // MARK: Rows

    /// How long one operation may take, waiting for a connection included: an unreachable database (the pool retries
    /// its connects for ever) must fail the operation with a reason, not hold it.
    static let operationTimeout: Duration = .seconds(10)

    /// Runs `body` on a pooled connection, one statement at a time (each its own transaction unless it opens one).
    /// - Parameters:
    ///   - kind: What it is to the ``OutageGate`` while the database does not answer: refused, a probe, or essential.
    ///   - lost: Run with the value of work that succeeded after its caller stopped waiting (timed out or cancelled),
    ///     to undo what the caller was told did not happen.
    func connection<T: Sendable>(
        _ kind: OutageGate.Kind = .operation, lost: (@Sendable (T) async -> Void)? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        try await self.bounded(kind, lost: lost) { try await self.client.withConnection { connection in try await body(connection) } }
    }

    /// Runs `body` as one transaction on a pooled connection (rolled back when it throws).
    func transaction<T: Sendable>(
        _ kind: OutageGate.Kind = .operation, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        try await self.bounded(kind, lost: nil) {
            try await self.client.withTransaction(logger: self.logger) { connection in try await body(connection) }
        }
    }

    /// Runs `work` within ``operationTimeout``: past it (or when the caller is cancelled) the operation fails at once
    /// and the work is cancelled — but not waited for: a statement sent to a server that hangs (stopped, its host gone
    /// without a reset) is not ended by cancellation (postgres-nio does not cancel a statement under way) nor by the
    /// server's own `statement_timeout`, and a task group would wait for it. The work runs on in the background, still
    /// counted for ``close()``; a success that comes after the caller stopped waiting is handed to `lost` (a key's
    /// claim is taken back); a poll or an attempt is recorded only under its claim, which lapses.
    ///
    /// While operations time out (the database unreachable), others fail at once rather than wait: see ``OutageGate``.
    private func bounded<T: Sendable>(
        _ kind: OutageGate.Kind, lost: (@Sendable (T) async -> Void)?, _ work: @escaping @Sendable () async throws -> T
    ) async throws(StoreError) -> T {
        let (admitted, since) = self.outage.withLock { gate in (gate.admit(kind, now: .now), gate.unreachableSince) }
        guard admitted else {
            let seconds = since.map { Int(($0.duration(to: .now)).components.seconds) } ?? 0
            throw StoreError.unavailable("PostgreSQL has not answered for \(seconds) s (no operation waits while it does not)")
        }
        // Who ended the operation is decided under one lock: the work's result, or the caller giving up (the timer's
        // wake-up or its cancellation). The stream only wakes the caller; it carries nothing.
        let race = Mutex(Race<T>.running)
        let (wake, waker) = AsyncStream.makeStream(of: Void.self)
        self.inFlight.withLock { $0 += 1 }
        let worker = Task {
            let result: Result<T, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            let won = race.withLock { state -> Bool in
                // The database answered, in time or not — unless the work ended because it was cancelled, which says
                // nothing about the database. Under the race's lock, so that it cannot come before the caller's
                // "timed out" and be undone by it.
                if !Task.isCancelled { self.outage.withLock { $0.answered() } }
                guard case .running = state else { return false }
                state = .done(result)
                return true
            }
            if won {
                waker.finish()
            } else if let lost, case .success(let value) = result {
                // In a task of its own: this one is cancelled (its caller gave up), and the undoing must not be.
                Task {
                    await lost(value)
                    self.inFlight.withLock { $0 -= 1 }
                }
                return
            }
            self.inFlight.withLock { $0 -= 1 }
        }
        let timer = Task {
            try? await Task.sleep(for: Self.operationTimeout)
            waker.finish()
        }
        // Ends when the work or the timer finishes the stream, or the caller is cancelled.
        for await _ in wake {}
        timer.cancel()
        let cancelled = Task.isCancelled
        let result = race.withLock { state -> Result<T, any Error>? in
            if case .done(let result) = state { return result }
            state = .over
            if !cancelled { self.outage.withLock { $0.timedOut(kind, now: .now) } }
            return nil
        }
        guard let result else {
            worker.cancel()
            if cancelled { throw Self.storeError(CancellationError()) }
            throw StoreError.unavailable("PostgreSQL did not answer within \(Self.operationTimeout)")
        }
        do { return try result.get() } catch { throw Self.storeError(error) }
    }

    /// Who ended a bounded operation.
    private enum Race<T: Sendable>: Sendable {
        case running
        /// The work, with its result.
        case done(Result<T, any Error>)
        /// Its caller, who stopped waiting (timed out or cancelled).
        case over
    }

    static func run(_ connection: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws {
        _ = try await connection.query(query, logger: logger).collect()
    }

    static func rows(_ connection: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    /// A store error that says what PostgreSQL said (its SQLSTATE and message) — never the query's values, which
    /// hold message content.
    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let transaction = error as? PostgresTransactionError {
            return Self.storeError(transaction.closureError ?? transaction.rollbackError ?? transaction.commitError ?? transaction.beginError ?? error)
        }
        if let error = error as? PSQLError {
            if let server = error.serverInfo {
                return .unavailable("PostgreSQL \(server[.sqlState] ?? "?"): \(server[.message] ?? "")")
            }
            return .unavailable("PostgreSQL: \(error.code)\(error.underlying.map { " (\($0))" } ?? "")")
        }
        if error is PostgresDecodingError { return .corrupt("a stored row could not be read") }
        return .unavailable("PostgreSQL: \(type(of: error))")
    }

    private static func trackedRequest(_ row: PostgresRow) throws -> TrackedRequest {
        let columns = row.makeRandomAccess()
        guard let state = TrackedRequest.State(rawValue: try columns["state"].decode(String.self)) else { throw StoreError.corrupt("a tracked request's state") }
        return TrackedRequest(
            requestId: try columns["request_id"].decode(String.self), channel: try columns["channel"].decode(String.self),
            serviceId: try columns["service_id"].decode(String.self), caller: try columns["caller"].decode(String.self),
            acceptedAt: try columns["accepted_at"].decode(Int64.self), reserveAt: try columns["reserve_at"].decode(Int64?.self),
            nextPollAt: try columns["next_poll_at"].decode(Int64.self), polls: try columns["polls"].decode(Int.self), state: state)
    }

    private static func event(_ row: PostgresRow) throws -> StoredEvent {
        let columns = row.makeRandomAccess()
        guard let state = StoredEvent.State(rawValue: try columns["state"].decode(String.self)) else { throw StoreError.corrupt("an event's state") }
        return StoredEvent(
            id: try columns["id"].decode(String.self), requestId: try columns["request_id"].decode(String.self),
            messageId: try columns["message_id"].decode(String.self), caller: try columns["caller"].decode(String.self),
            body: try columns["body"].decode(String.self), createdAt: try columns["created_at"].decode(Int64.self),
            attempts: try columns["attempts"].decode(Int.self), nextAttemptAt: try columns["next_attempt_at"].decode(Int64.self),
            state: state, claim: nil)
    }
}
