import NIOCore
import SQLiteNIO

/// Idempotency keys in the embedded store (PRODUCT.md §7): one row per caller and key, claimed and settled in group
/// commits like tracking records, so keyed sends arriving together share a transaction.
extension SQLiteStore {
    public func claimKey(_ key: IdempotencyKey, now: StoreTime, lease: StoreTime, ttl: StoreTime) async throws(StoreError) -> KeyClaim {
        let token = ClaimToken.make()
        return try await self.batched { () async throws(StoreError) -> KeyClaim in
            // One connection, one writer at a time, and the read and the write in one transaction: no other claim can
            // come between them.
            // A key past its TTL is free again — unless its send may still be in flight (its claim holds).
            if let row = try await self.rows(
                """
                SELECT * FROM idempotency_keys
                WHERE caller = ? AND key = ? AND (expires_at > ? OR (state = 'in_progress' AND claimed_until > ?))
                """,
                [.text(key.caller), .text(key.key), .integer(.init(now)), .integer(.init(now))]
            ).first {
                return try Self.claim(found: row, fingerprint: key.fingerprint, now: now)
            }
            // New, or expired and not yet swept: the key starts again.
            _ = try await self.rows(
                """
                INSERT OR REPLACE INTO idempotency_keys (caller, key, fingerprint, state, claim_token, claimed_until, created_at, expires_at)
                VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?)
                """,
                [
                    .text(key.caller), .text(key.key), .text(key.fingerprint), .text(token), .integer(.init(now + lease)),
                    .integer(.init(now)), .integer(.init(now + lease + ttl)),
                ])
            return .claimed(ClaimedKey(caller: key.caller, key: key.key, token: token, ttl: ttl))
        }
    }

    /// What a key's row says to a second call with `fingerprint` at `now`.
    private static func claim(found row: SQLiteRow, fingerprint: String, now: StoreTime) throws(StoreError) -> KeyClaim {
        try KeyClaim.found(
            fingerprint: try Self.text(row, "fingerprint"), state: try Self.text(row, "state"),
            claimedUntil: try Self.integer(row, "claimed_until"), asking: fingerprint, now: now
        ) { () throws(StoreError) in
            guard let status = row.column("status")?.integer else { throw .corrupt("an answered key without a status") }
            return StoredAnswer(
                status: Int(status), contentType: row.column("content_type")?.string,
                retryAfterSeconds: row.column("retry_after")?.integer.map { Int($0) },
                headers: StoredHeader.parse(row.column("headers")?.string ?? ""),
                body: row.column("body")?.blob.map { Array($0.readableBytesView) } ?? [])
        }
    }

    public func settleKey(_ claim: ClaimedKey, as settlement: KeySettlement, now: StoreTime) async throws(StoreError) {
        // Two statements only for a tracked answer: the rest are one each, undone by SQLite alone when they fail.
        let statements = if case .answered(_, tracking: .some) = settlement { 2 } else { 1 }
        try await self.batched(statements: statements) { () async throws(StoreError) in
            let expires: SQLiteData = .integer(.init(now + claim.ttl))
            let held: [SQLiteData] = [.text(claim.caller), .text(claim.key), .text(claim.token)]
            switch settlement {
            case .answered(let answer, let tracking):
                _ = try await self.rows(
                    """
                    UPDATE idempotency_keys SET state = 'answered', claim_token = NULL, status = ?, content_type = ?, retry_after = ?,
                        headers = ?, body = ?, expires_at = ?
                    WHERE caller = ? AND key = ? AND claim_token = ? AND state = 'in_progress'
                    """,
                    [
                        .integer(.init(answer.status)), answer.contentType.map { .text($0) } ?? .null,
                        answer.retryAfterSeconds.map { .integer(.init($0)) } ?? .null, .text(StoredHeader.text(answer.headers)),
                        .blob(ByteBuffer(bytes: answer.body)), expires,
                    ] + held)
                if let tracking { try await self.insert(tracking) }
            case .unknown:
                _ = try await self.rows(
                    """
                    UPDATE idempotency_keys SET state = 'unknown', claim_token = NULL, expires_at = ?
                    WHERE caller = ? AND key = ? AND claim_token = ? AND state = 'in_progress'
                    """,
                    [expires] + held)
            case .released:
                _ = try await self.rows(
                    "DELETE FROM idempotency_keys WHERE caller = ? AND key = ? AND claim_token = ? AND state = 'in_progress'", held)
            }
        }
    }

    public func sweepKeys(now: StoreTime, limit: Int) async throws(StoreError) -> Int {
        try await self.batched { () async throws(StoreError) -> Int in
            // Bounded, so a sweep after a long stop does not hold the one writer for long.
            let swept = try await self.rows(
                """
                DELETE FROM idempotency_keys WHERE rowid IN (
                    SELECT rowid FROM idempotency_keys WHERE expires_at <= ? AND NOT (state = 'in_progress' AND claimed_until > ?) LIMIT ?)
                RETURNING 1
                """,
                [.integer(.init(now)), .integer(.init(now)), .integer(.init(limit))])
            return swept.count
        }
    }
}
