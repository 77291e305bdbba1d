public import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import Signing
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The embedded backend of ``DeliveryStore``: one SQLite file in `data-dir`, in WAL mode, every operation one
/// transaction. Every SQLite call runs on the store's own thread (sqlite-nio's thread pool of one), never on an event
/// loop; transactions run one at a time, so the statements of two never interleave on the one connection.
///
/// `synchronous=NORMAL` in WAL mode: a committed transaction survives the process being killed (`kill -9`); a power
/// loss may lose the last commits, which is the trade every embedded queue of this kind makes for not paying an
/// `fsync` per send.
public final class SQLiteStore: DeliveryStore {
    /// One file, one owner.
    public var isShared: Bool { false }

    /// The schema this build writes. Version 1: tracked requests, their messages, the event outbox. Version 2:
    /// idempotency keys.
    public static let schemaVersion = 2

    private let connection: SQLiteConnection
    private let threadPool: NIOThreadPool
    private let gate = TransactionGate()
    /// Writes waiting for the next group commit, and whether a commit is under way.
    private let pendingWrites = Mutex<(waiting: [BatchedWrite], flushing: Bool)>(([], false))

    /// The store's file (checked by ``counts()``: a file removed under a running process is written into the void).
    private let file: String

    private init(connection: SQLiteConnection, threadPool: NIOThreadPool, file: String) {
        self.connection = connection
        self.threadPool = threadPool
        self.file = file
    }

    /// Opens (creating, or migrating) the store in `directory`, which is created if missing.
    /// - Parameter releasingClaims: Whether claims left by an earlier process are released at once (`serve`: the
    ///   file has one owner, so after `kill -9` its work is resumed now, not when the leases lapse). A command-line
    ///   tool that opens the file beside a running `serve` leaves them.
    /// - Throws: ``StoreError`` when the directory cannot be made or written, the file cannot be opened, or it holds a
    ///   newer schema.
    public static func open(directory: String, logger: Logger, releasingClaims: Bool = false) async throws(StoreError) -> SQLiteStore {
        try Self.makeDirectory(directory)
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(
                storage: .file(path: directory + "/sensgate.sqlite"), threadPool: threadPool, logger: logger,
                on: MultiThreadedEventLoopGroup.singleton.any())
        } catch {
            try? await threadPool.shutdownGracefully()
            throw .unavailable("cannot open \(directory)/sensgate.sqlite: \(error)")
        }
        let store = SQLiteStore(connection: connection, threadPool: threadPool, file: directory + "/sensgate.sqlite")
        do {
            try await store.prepare()
            if releasingClaims { try await store.releaseClaims() }
            // Results hold message content (numbers masked, bodies not): the owner only, whatever the umask.
            for suffix in ["", "-wal", "-shm"] { chmod(directory + "/sensgate.sqlite" + suffix, 0o600) }
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    public func close() async {
        try? await self.connection.close()
        try? await self.threadPool.shutdownGracefully()
    }

    // MARK: Schema

    private func prepare() async throws(StoreError) {
        // First, so that a file another process holds is waited for (5 s), not spun on.
        _ = try await self.rows("PRAGMA busy_timeout=5000")
        let mode = try await self.rows("PRAGMA journal_mode=WAL").first?.column("journal_mode")?.string
        guard mode?.lowercased() == "wal" else { throw .unavailable("the store's file system does not support WAL (journal mode \(mode ?? "?"))") }
        _ = try await self.rows("PRAGMA synchronous=NORMAL")
        _ = try await self.rows("PRAGMA foreign_keys=ON")
        try await self.transaction { () async throws(StoreError) in
            _ = try await self.rows("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let found = try await self.rows("SELECT version FROM schema_version").first?.column("version")?.integer.map { Int($0) }
            switch found {
            case nil:
                for statement in Self.schema + Self.migrations.joined() { _ = try await self.rows(statement) }
                _ = try await self.rows("INSERT INTO schema_version (version) VALUES (?)", [.integer(.init(Self.schemaVersion))])
            case let version? where version > Self.schemaVersion:
                throw .schemaTooNew(found: version, known: Self.schemaVersion)
            case let version? where version < 1:
                throw .corrupt("the store's schema version is \(version)")
            case Self.schemaVersion?:
                break
            case let version?:
                // Each later version's statements, in order, in this one transaction: a failed migration leaves the
                // file as it was.
                for statement in Self.migrations.dropFirst(version - 1).joined() { _ = try await self.rows(statement) }
                _ = try await self.rows("UPDATE schema_version SET version = ?", [.integer(.init(Self.schemaVersion))])
            }
        }
    }

    private static let schema = [
        """
        CREATE TABLE tracked_requests (
            request_id TEXT PRIMARY KEY, channel TEXT NOT NULL, service_id TEXT NOT NULL, caller TEXT NOT NULL,
            accepted_at INTEGER NOT NULL, reserve_at INTEGER, next_poll_at INTEGER NOT NULL, polls INTEGER NOT NULL,
            state TEXT NOT NULL, claimed_until INTEGER NOT NULL DEFAULT 0, claim_token TEXT)
        """,
        "CREATE INDEX tracked_requests_due ON tracked_requests (state, next_poll_at)",
        """
        CREATE TABLE messages (
            request_id TEXT NOT NULL REFERENCES tracked_requests (request_id), message_id TEXT NOT NULL,
            final INTEGER NOT NULL, result TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (request_id, message_id))
        """,
        """
        CREATE TABLE events (
            id TEXT PRIMARY KEY, request_id TEXT NOT NULL, message_id TEXT NOT NULL, caller TEXT NOT NULL, body TEXT NOT NULL,
            created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
            claimed_until INTEGER NOT NULL DEFAULT 0, claim_token TEXT, state TEXT NOT NULL, UNIQUE (request_id, message_id))
        """,
        "CREATE INDEX events_due ON events (state, next_attempt_at)",
    ]

    /// The statements that take version `n + 1` to `n + 2`, at index `n` (version 1 is ``schema``).
    private static let migrations: [[String]] = [
        [
            // state: in_progress (claimed until claimed_until), answered (the answer's columns set), unknown.
            """
            CREATE TABLE idempotency_keys (
                caller TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL, claim_token TEXT,
                claimed_until INTEGER NOT NULL, status INTEGER, content_type TEXT, retry_after INTEGER, headers TEXT, body BLOB,
                created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (caller, key))
            """,
            "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
        ]
    ]

    /// Releases every claim (see ``open(directory:logger:releasingClaims:)``).
    private func releaseClaims() async throws(StoreError) {
        try await self.transaction { () async throws(StoreError) in
            _ = try await self.rows("UPDATE tracked_requests SET claimed_until = 0, claim_token = NULL WHERE claim_token IS NOT NULL")
            _ = try await self.rows("UPDATE events SET claimed_until = 0, claim_token = NULL WHERE claim_token IS NOT NULL")
            // A key whose send was in flight when the last process stopped: the send may have reached SENS.
            _ = try await self.rows("UPDATE idempotency_keys SET claimed_until = 0 WHERE state = 'in_progress'")
        }
    }

    // MARK: Tracked requests

    public func track(_ request: TrackedRequest) async throws(StoreError) {
        try await self.batched { () async throws(StoreError) in try await self.insert(request) }
    }

    /// One write of a group commit: run inside the batch's transaction, then told how the commit went.
    private struct BatchedWrite: Sendable {
        /// Whether it is more than one statement, and so needs a savepoint to be undone alone.
        let savepoint: Bool
        let run: @Sendable () async throws(StoreError) -> Void
        /// The write was undone (its own failure, or its savepoint's): whatever it made is not its result.
        let undone: @Sendable (StoreError) -> Void
        let finish: @Sendable (StoreError?) -> Void
    }

    /// Runs `write` in the next group commit: writes that arrive while a commit is under way are made together in the
    /// next one, so the sends waiting on them share one transaction (one at a time is what SQLite allows). A write that
    /// fails is undone alone and fails alone: a write of one statement is undone by SQLite itself, a longer one
    /// (`statements` > 1) runs in a savepoint of its own — not every write, since each savepoint adds two statements to
    /// the one writer's work.
    func batched<T: Sendable>(statements: Int = 1, _ write: @escaping @Sendable () async throws(StoreError) -> T) async throws(StoreError) -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, StoreError>, Never>) in
            let value = Mutex<Result<T, StoreError>?>(nil)
            let batchedWrite = BatchedWrite(
                savepoint: statements > 1,
                run: { () async throws(StoreError) in
                    let made = try await write()
                    value.withLock { $0 = .success(made) }
                },
                undone: { error in value.withLock { $0 = .failure(error) } },
                finish: { commitError in
                    let outcome = value.withLock { $0 } ?? .failure(.unavailable("the write did not run"))
                    continuation.resume(returning: commitError.map { .failure($0) } ?? outcome)
                })
            let startsFlush = self.pendingWrites.withLock { state -> Bool in
                state.waiting.append(batchedWrite)
                guard !state.flushing else { return false }
                state.flushing = true
                return true
            }
            if startsFlush { Task { await self.flushWrites() } }
        }
        return try result.get()
    }

    /// Commits the writes waiting, batch after batch, until none is left.
    private func flushWrites() async {
        while true {
            let batch = self.pendingWrites.withLock { state -> [BatchedWrite] in
                guard !state.waiting.isEmpty else {
                    state.flushing = false
                    return []
                }
                defer { state.waiting.removeAll(keepingCapacity: true) }
                return state.waiting
            }
            guard !batch.isEmpty else { return }
            var commitError: StoreError? = nil
            do {
                try await self.transaction { () async throws(StoreError) in
                    for write in batch {
                        guard write.savepoint else {
                            do throws(StoreError) { try await write.run() } catch { write.undone(error) }
                            continue
                        }
                        _ = try await self.rows("SAVEPOINT write")
                        do throws(StoreError) {
                            try await write.run()
                            _ = try await self.rows("RELEASE write")
                        } catch {
                            // This write alone is undone (its caller is told by its own result), a success too when
                            // its savepoint could not be released.
                            write.undone(error)
                            _ = try await self.rows("ROLLBACK TO write")
                            _ = try await self.rows("RELEASE write")
                        }
                    }
                }
            } catch {
                commitError = error
            }
            for write in batch { write.finish(commitError) }
        }
    }

    func insert(_ request: TrackedRequest) async throws(StoreError) {
        _ = try await self.rows(
            """
            INSERT OR IGNORE INTO tracked_requests
                (request_id, channel, service_id, caller, accepted_at, reserve_at, next_poll_at, polls, state)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(request.requestId), .text(request.channel), .text(request.serviceId), .text(request.caller),
                .integer(.init(request.acceptedAt)), request.reserveAt.map { .integer(.init($0)) } ?? .null,
                .integer(.init(request.nextPollAt)), .integer(.init(request.polls)), .text(request.state.rawValue),
            ])
    }

    public func request(id: String) async throws(StoreError) -> (TrackedRequest, [StoredResult])? {
        try await self.transaction(readOnly: true) { () async throws(StoreError) -> (TrackedRequest, [StoredResult])? in
            guard let row = try await self.rows("SELECT * FROM tracked_requests WHERE request_id = ?", [.text(id)]).first else { return nil }
            let request = try Self.trackedRequest(row)
            var results: [StoredResult] = []
            for message in try await self.rows(
                "SELECT message_id, final, result FROM messages WHERE request_id = ? ORDER BY message_id", [.text(id)])
            {
                results.append(
                    StoredResult(
                        messageId: try Self.text(message, "message_id"), isFinal: try Self.integer(message, "final") != 0,
                        json: try Self.text(message, "result")))
            }
            return (request, results)
        }
    }

    public func claimDueRequests(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [TrackedRequest] {
        try await self.claim(
            table: "tracked_requests", key: "request_id", due: "state = 'tracking' AND next_poll_at <= ?", order: "next_poll_at",
            now: now, limit: limit, lease: lease, decode: Self.trackedRequest, id: \.requestId, token: \.claim)
    }

    public func recordPoll(_ request: TrackedRequest, outcome: PollOutcome, now: StoreTime) async throws(StoreError) -> Bool {
        let requestId = request.requestId
        guard let claim = request.claim else { return false }
        return try await self.transaction { () async throws(StoreError) -> Bool in
            let held = try await self.rows(
                "SELECT 1 FROM tracked_requests WHERE request_id = ? AND claim_token = ? AND state = 'tracking'", [.text(requestId), .text(claim)])
            guard !held.isEmpty else { return false }
            for result in outcome.results {
                let before = try await self.rows(
                    "SELECT final FROM messages WHERE request_id = ? AND message_id = ?", [.text(requestId), .text(result.messageId)]
                ).first
                // A final result never changes again (and its event exists already).
                if let before, try Self.integer(before, "final") != 0 { continue }
                _ = try await self.rows(
                    """
                    INSERT INTO messages (request_id, message_id, final, result, updated_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (request_id, message_id) DO UPDATE SET final = excluded.final, result = excluded.result,
                        updated_at = excluded.updated_at
                    """,
                    [.text(requestId), .text(result.messageId), .integer(result.isFinal ? 1 : 0), .text(result.json), .integer(.init(now))])
                guard result.isFinal, outcome.makesEvents else { continue }
                // The outbox: the event is committed with the result that causes it.
                _ = try await self.rows(
                    """
                    INSERT OR IGNORE INTO events (id, request_id, message_id, caller, body, created_at, next_attempt_at, state)
                    SELECT ?, request_id, ?, caller, ?, ?, ?, 'pending' FROM tracked_requests WHERE request_id = ?
                    """,
                    [
                        .text(StoredEvent.id(requestId: requestId, messageId: result.messageId)), .text(result.messageId),
                        .text(outcome.eventBody(result)), .integer(.init(now)), .integer(.init(now)), .text(requestId),
                    ])
            }
            _ = try await self.rows(
                """
                UPDATE tracked_requests SET state = ?, next_poll_at = ?, polls = polls + 1, claimed_until = 0, claim_token = NULL
                WHERE request_id = ?
                """,
                [.text(outcome.state.rawValue), .integer(.init(outcome.nextPollAt)), .text(requestId)])
            return true
        }
    }

    // MARK: Events

    public func claimDueEvents(now: StoreTime, limit: Int, lease: StoreTime) async throws(StoreError) -> [StoredEvent] {
        try await self.claim(
            table: "events", key: "id", due: "state = 'pending' AND next_attempt_at <= ?", order: "next_attempt_at",
            now: now, limit: limit, lease: lease, decode: Self.event, id: \.id, token: \.claim)
    }

    /// Claims due rows under a lease, in one transaction: those `due` at `now` whose earlier claim has lapsed.
    private func claim<Item>(
        table: StaticString, key: StaticString, due: StaticString, order: StaticString, now: StoreTime, limit: Int, lease: StoreTime,
        decode: (SQLiteRow) throws(StoreError) -> Item, id: (Item) -> String, token: WritableKeyPath<Item, String?>
    ) async throws(StoreError) -> [Item] {
        let claim = ClaimToken.make()
        return try await self.transaction { () async throws(StoreError) -> [Item] in
            let rows = try await self.rows(
                "SELECT * FROM \(table) WHERE \(due) AND claimed_until <= ? ORDER BY \(order) LIMIT ?",
                [.integer(.init(now)), .integer(.init(now)), .integer(.init(limit))])
            var claimed: [Item] = []
            for row in rows {
                var item = try decode(row)
                _ = try await self.rows(
                    "UPDATE \(table) SET claimed_until = ?, claim_token = ? WHERE \(key) = ?", [.integer(.init(now + lease)), .text(claim), .text(id(item))])
                item[keyPath: token] = claim
                claimed.append(item)
            }
            return claimed
        }
    }

    public func recordAttempt(_ event: StoredEvent, delivered: Bool, retryAt: StoreTime?) async throws(StoreError) -> Bool {
        guard let claim = event.claim else { return false }
        let state: StoredEvent.State = delivered ? .delivered : (retryAt == nil ? .failed : .pending)
        return try await self.transaction { () async throws(StoreError) -> Bool in
            let held = try await self.rows(
                "SELECT 1 FROM events WHERE id = ? AND claim_token = ? AND state = 'pending'", [.text(event.id), .text(claim)])
            guard !held.isEmpty else { return false }
            _ = try await self.rows(
                """
                UPDATE events SET state = ?, attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), claimed_until = 0,
                    claim_token = NULL
                WHERE id = ?
                """,
                [.text(state.rawValue), retryAt.map { .integer(.init($0)) } ?? .null, .text(event.id)])
            return true
        }
    }

    public func events(state: StoredEvent.State, caller: String?, limit: Int) async throws(StoreError) -> [StoredEvent] {
        try await self.transaction(readOnly: true) { () async throws(StoreError) -> [StoredEvent] in
            let rows = try await self.rows(
                "SELECT * FROM events WHERE state = ? AND (? IS NULL OR caller = ?) ORDER BY created_at, id LIMIT ?",
                [.text(state.rawValue), caller.map { .text($0) } ?? .null, caller.map { .text($0) } ?? .null, .integer(.init(limit))])
            var events: [StoredEvent] = []
            for row in rows { events.append(try Self.event(row)) }
            return events
        }
    }

    public func redeliver(eventId: String, caller: String?, now: StoreTime) async throws(StoreError) -> Bool {
        try await self.transaction { () async throws(StoreError) -> Bool in
            let found = try await self.rows(
                "SELECT id FROM events WHERE id = ? AND state = 'failed' AND (? IS NULL OR caller = ?)",
                [.text(eventId), caller.map { .text($0) } ?? .null, caller.map { .text($0) } ?? .null])
            guard !found.isEmpty else { return false }
            _ = try await self.rows(
                """
                UPDATE events SET state = 'pending', next_attempt_at = ?, created_at = ?, attempts = 0, claimed_until = 0, claim_token = NULL
                WHERE id = ?
                """,
                [.integer(.init(now)), .integer(.init(now)), .text(eventId)])
            return true
        }
    }

    /// The embedded store has one owner (its file is not shared between hosts, and `serve` takes over its claims at
    /// start): a fleet of one, with nothing to record.
    public func heartbeat(replica: String, liveFor: StoreTime) async throws(StoreError) -> Int { 1 }

    public func leave(replica: String) async throws(StoreError) {}

    public func counts() async throws(StoreError) -> StoreCounts {
        guard access(self.file, W_OK) == 0 else {
            throw .unavailable("the store's file \(self.file) is gone or not writable: \(String(cString: strerror(errno)))")
        }
        return try await self.transaction(readOnly: true) { () async throws(StoreError) -> StoreCounts in
            var counts = StoreCounts(requests: [:], events: [:])
            if let row = try await self.rows("SELECT COUNT(*) AS n FROM idempotency_keys").first { counts.keys = Int(try Self.integer(row, "n")) }
            for row in try await self.rows("SELECT state, COUNT(*) AS n FROM tracked_requests GROUP BY state") {
                guard let state = TrackedRequest.State(rawValue: try Self.text(row, "state")) else { continue }
                counts.requests[state] = Int(try Self.integer(row, "n"))
            }
            for row in try await self.rows("SELECT state, COUNT(*) AS n FROM events GROUP BY state") {
                guard let state = StoredEvent.State(rawValue: try Self.text(row, "state")) else { continue }
                counts.events[state] = Int(try Self.integer(row, "n"))
            }
            return counts
        }
    }

    // MARK: Rows

    /// One statement. Through the future-based call, which runs whatever the calling task's cancellation: a task
    /// cancelled inside a transaction must still reach its COMMIT or ROLLBACK, or the one connection stays inside it.
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws(StoreError) -> [SQLiteRow] {
        do {
            let statement: EventLoopFuture<[SQLiteRow]> = self.connection.query(sql, binds)
            return try await statement.get()
        } catch let error as StoreError {
            throw error
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// Runs `body` as one transaction (`BEGIN IMMEDIATE` for a write: the write lock is taken at once, so two writers
    /// never both read and then collide), after any transaction already running.
    func transaction<T>(readOnly: Bool = false, _ body: () async throws(StoreError) -> T) async throws(StoreError) -> T {
        await self.gate.enter()
        defer { self.gate.leave() }
        // A read takes no write lock (another process — a command-line tool — may write meanwhile).
        _ = try await self.rows(readOnly ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE")
        do {
            let value = try await body()
            _ = try await self.rows("COMMIT")
            return value
        } catch {
            _ = try? await self.rows("ROLLBACK")
            throw error
        }
    }

    private static func trackedRequest(_ row: SQLiteRow) throws(StoreError) -> TrackedRequest {
        guard let state = TrackedRequest.State(rawValue: try Self.text(row, "state")) else { throw .corrupt("a tracked request's state") }
        return TrackedRequest(
            requestId: try Self.text(row, "request_id"), channel: try Self.text(row, "channel"), serviceId: try Self.text(row, "service_id"),
            caller: try Self.text(row, "caller"), acceptedAt: try Self.integer(row, "accepted_at"),
            reserveAt: row.column("reserve_at")?.integer.map(StoreTime.init), nextPollAt: try Self.integer(row, "next_poll_at"),
            polls: Int(try Self.integer(row, "polls")), state: state)
    }

    private static func event(_ row: SQLiteRow) throws(StoreError) -> StoredEvent {
        guard let state = StoredEvent.State(rawValue: try Self.text(row, "state")) else { throw .corrupt("an event's state") }
        return StoredEvent(
            id: try Self.text(row, "id"), requestId: try Self.text(row, "request_id"), messageId: try Self.text(row, "message_id"),
            caller: try Self.text(row, "caller"), body: try Self.text(row, "body"), createdAt: try Self.integer(row, "created_at"),
            attempts: Int(try Self.integer(row, "attempts")), nextAttemptAt: try Self.integer(row, "next_attempt_at"), state: state,
            claim: nil)
    }

    static func text(_ row: SQLiteRow, _ column: String) throws(StoreError) -> String {
        guard let value = row.column(column)?.string else { throw .corrupt("column \(column) is missing") }
        return value
    }

    static func integer(_ row: SQLiteRow, _ column: String) throws(StoreError) -> StoreTime {
        guard let value = row.column(column)?.integer else { throw .corrupt("column \(column) is missing") }
        return StoreTime(value)
    }

    /// Creates `path` (mode 0700) when it does not exist, and checks that it is a writable directory.
    private static func makeDirectory(_ path: String) throws(StoreError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw .unavailable("cannot create data-dir \(path): \(String(cString: strerror(errno)))")
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .unavailable("data-dir \(path) is not writable: \(String(cString: strerror(errno)))")
        }
    }
}

/// One transaction at a time: an async gate (the connection is one, and a transaction's statements are awaited one
/// by one, so without it two transactions would interleave).
private final class TransactionGate: Sendable {
    private let state = Mutex<(busy: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let admitted = self.state.withLock { state -> Bool in
                guard state.busy else {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if admitted { continuation.resume() }
        }
    }

    func leave() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
