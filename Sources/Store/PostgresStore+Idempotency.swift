import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Idempotency keys in the fleet's store (PRODUCT.md §7): a key in use is read without a lock; a free one is claimed
/// by one `INSERT … ON CONFLICT DO UPDATE … WHERE` the key is free, so of two replicas claiming one key at once exactly
/// one gets it — the other's statement waits on the row's lock and then finds it taken.
extension PostgresStore {
    public func claimKey(_ key: IdempotencyKey, now: StoreTime, lease: StoreTime, ttl: StoreTime) async throws(StoreError) -> KeyClaim {
        let token = ClaimToken.make()
        // The caller is told nothing was sent and a retry must find the key free, so a claim its caller did not hear
        // of is taken back by its token: one that lands after the caller stopped waiting (`lost`), and one whose
        // INSERT went out but was not answered (the connection cut, maybe after its COMMIT) — taken back only once
        // the INSERT has ended, so that the DELETE cannot run before it.
        let inserting = Mutex(false)
        return try await self.connection(lost: { claim in if case .claimed = claim { await self.takeBack(key, token: token) } }) { connection in
            do {
                return try await Self.claimKey(key, token: token, now: now, lease: lease, ttl: ttl, on: connection, logger: self.logger) {
                    inserting.withLock { $0 = true }
                }
            } catch {
                if inserting.withLock({ $0 }) {
                    // Not awaited: the caller's 503 is not held while the database may be down.
                    Task { await self.takeBack(key, token: token) }
                }
                throw error
            }
        }
    }

    /// Deletes the claim `token` made on `key`, if it holds it, retried each ``OutageGate/probeInterval`` until it
    /// lands or the store closes (a claim left holds the key for its lease, then answers `outcome_unknown`).
    private func takeBack(_ key: IdempotencyKey, token: String) async {
        while !self.isClosing {
            do {
                try await self.connection { connection in
                    try await Self.run(
                        connection,
                        "DELETE FROM idempotency_keys WHERE caller = \(key.caller) AND key = \(key.key) AND claim_token = \(token) AND state = 'in_progress'",
                        self.logger)
                }
                return
            } catch {
                do { try await Task.sleep(for: OutageGate.probeInterval) } catch { return }
            }
        }
    }

    /// In autocommit statements, not a transaction: a key in use (a replay, a retry while in flight) is one read
    /// that takes no lock — concurrent replays of one key do not queue on its row — and a new key is one `INSERT`.
    /// `inserting` runs just before the INSERT is sent.
    private static func claimKey(
        _ key: IdempotencyKey, token: String, now: StoreTime, lease: StoreTime, ttl: StoreTime, on connection: PostgresConnection,
        logger: Logger, inserting: () -> Void
    ) async throws -> KeyClaim {
        // A row that is live (not expired, or its claim still holds) can only be settled by its own claim or
        // released by it: what it says now is the answer.
        let select: PostgresQuery = """
            SELECT * FROM idempotency_keys WHERE caller = \(key.caller) AND key = \(key.key)
                AND (expires_at > \(now) OR (state = 'in_progress' AND claimed_until > \(now)))
            """
        // A key that another claim takes and frees again between our statements (its send refused, say, by the rate
        // limit) is free once more: try again — a few rounds, for a key that many callers race for.
        for _ in 0..<5 {
            if let row = try await Self.rows(connection, select, logger).first { return try Self.claim(found: row, key: key, now: now) }
            // A caller that stopped waiting (the SELECT answered after the timeout) is told nothing was claimed:
            // nothing is. postgres-nio does not end a statement on cancellation, so this is checked here.
            try Task.checkCancellation()
            inserting()
            // Free: new, or expired with no claim that still holds. Of two claims at once, one inserts or updates; the
            // other's statement waits on the row's lock, then finds it taken (the WHERE no longer holds).
            let claimed = try await Self.rows(
                connection,
                """
                INSERT INTO idempotency_keys (caller, key, fingerprint, state, claim_token, claimed_until, created_at, expires_at)
                VALUES (\(key.caller), \(key.key), \(key.fingerprint), 'in_progress', \(token), \(now + lease), \(now), \(now + lease + ttl))
                ON CONFLICT (caller, key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'in_progress',
                    claim_token = excluded.claim_token, claimed_until = excluded.claimed_until, created_at = excluded.created_at,
                    expires_at = excluded.expires_at, status = NULL, content_type = NULL, retry_after = NULL, headers = NULL, body = NULL
                WHERE idempotency_keys.expires_at <= \(now)
                    AND NOT (idempotency_keys.state = 'in_progress' AND idempotency_keys.claimed_until > \(now))
                RETURNING claim_token
                """, logger)
            if try claimed.first?.decode(String?.self) == token {
                return .claimed(ClaimedKey(caller: key.caller, key: key.key, token: token, ttl: ttl))
            }
            // Another claim won in between: its row answers, unless it is gone again (next round).
        }
        throw StoreError.unavailable("an idempotency key was claimed and freed again by others five times over; try again")
    }

    /// What a key's live row says to a claim of `key` at `now`.
    private static func claim(found row: PostgresRow, key: IdempotencyKey, now: StoreTime) throws -> KeyClaim {
        let columns = row.makeRandomAccess()
        return try KeyClaim.found(
            fingerprint: try columns["fingerprint"].decode(String.self), state: try columns["state"].decode(String.self),
            claimedUntil: try columns["claimed_until"].decode(Int64.self), asking: key.fingerprint, now: now
        ) { () throws(StoreError) in
            do {
                guard let status = try columns["status"].decode(Int?.self) else { throw StoreError.corrupt("an answered key without a status") }
                return StoredAnswer(
                    status: status, contentType: try columns["content_type"].decode(String?.self),
                    retryAfterSeconds: try columns["retry_after"].decode(Int?.self),
                    headers: StoredHeader.parse(try columns["headers"].decode(String?.self) ?? ""),
                    body: try columns["body"].decode(ByteBuffer?.self).map { Array($0.readableBytesView) } ?? [])
            } catch {
                throw Self.storeError(error)
            }
        }
    }

    public func settleKey(_ claim: ClaimedKey, as settlement: KeySettlement, now: StoreTime) async throws(StoreError) {
        let expires = now + claim.ttl
        // One statement, unless a tracking record goes with the answer: then both in one transaction.
        let write: @Sendable (PostgresConnection) async throws -> Void = { connection in
            switch settlement {
            case .answered(let answer, let tracking):
                try await Self.run(
                    connection,
                    """
                    UPDATE idempotency_keys SET state = 'answered', claim_token = NULL, status = \(answer.status),
                        content_type = \(answer.contentType), retry_after = \(answer.retryAfterSeconds),
                        headers = \(StoredHeader.text(answer.headers)), body = \(ByteBuffer(bytes: answer.body)), expires_at = \(expires)
                    WHERE caller = \(claim.caller) AND key = \(claim.key) AND claim_token = \(claim.token) AND state = 'in_progress'
                    """, self.logger)
                // The send stands whether or not the claim was still the key's.
                if let tracking { try await self.insert(tracking, on: connection) }
            case .unknown:
                try await Self.run(
                    connection,
                    """
                    UPDATE idempotency_keys SET state = 'unknown', claim_token = NULL, expires_at = \(expires)
                    WHERE caller = \(claim.caller) AND key = \(claim.key) AND claim_token = \(claim.token) AND state = 'in_progress'
                    """, self.logger)
            case .released:
                try await Self.run(
                    connection,
                    """
                    DELETE FROM idempotency_keys
                    WHERE caller = \(claim.caller) AND key = \(claim.key) AND claim_token = \(claim.token) AND state = 'in_progress'
                    """, self.logger)
            }
        }
        // Not refused by the outage gate: SENS has answered, and what it said is worth a wait (the caller's answer is
        // not held by it — the gateway's commit deadline answers first).
        if case .answered(_, tracking: .some) = settlement {
            try await self.transaction(.essential, write)
        } else {
            try await self.connection(.essential, write)
        }
    }

    public func sweepKeys(now: StoreTime, limit: Int) async throws(StoreError) -> Int {
        try await self.connection { connection in
            // Bounded, and rows another replica is claiming or sweeping are skipped, not waited for.
            try await Self.rows(
                connection,
                """
                DELETE FROM idempotency_keys WHERE (caller, key) IN (
                    SELECT caller, key FROM idempotency_keys
                    WHERE expires_at <= \(now) AND NOT (state = 'in_progress' AND claimed_until > \(now))
                    LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING 1
                """, self.logger
            ).count
        }
    }
}
