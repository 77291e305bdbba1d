import Logging
import Store
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The store against a real SQLite file in a temporary directory and a real PostgreSQL server (the contract tests run
/// on both backends; the file tests on SQLite).
@Suite("Store: every backend alike, and the SQLite file")
struct SQLiteStoreTests {
    /// A fresh directory under /tmp, removed afterwards.
    static func withDirectory(_ body: (String) async throws -> Void) async throws {
        var template = Array("/tmp/sensgate-store-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) } }
        let directory = try #require(made)
        defer {
            for name in ["sensgate.sqlite", "sensgate.sqlite-wal", "sensgate.sqlite-shm"] { unlink(directory + "/data/" + name) }
            rmdir(directory + "/data")
            rmdir(directory)
        }
        try await body(directory + "/data")
    }

    static let logger = Logger(label: "store-test")

    static func request(_ id: String, at time: StoreTime = 1_000) -> TrackedRequest {
        TrackedRequest(
            requestId: id, channel: "sms", serviceId: "ncp:sms:kr:1:x", caller: "orders", acceptedAt: time, nextPollAt: time + 2_000)
    }

    static func outcome(_ results: [StoredResult], state: TrackedRequest.State = .tracking, next: StoreTime = 10_000) -> PollOutcome {
        PollOutcome(results: results, state: state, nextPollAt: next) { result in #"{"type":"delivery.completed","data":\#(result.json)}"# }
    }

    @Test("the schema is created in a new data-dir, and what was written is there after reopening", arguments: Backend.allCases)
    func survivesReopen(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            try await store.track(Self.request("R-1"))
            try await store.track(Self.request("R-1", at: 5))  // the same request again changes nothing
            await store.close()
            let reopened = try await reopen()
            let (request, results) = try #require(try await reopened.request(id: "R-1"))
            #expect(request == Self.request("R-1"))
            #expect(results.isEmpty)
            #expect(try await reopened.request(id: "R-2") == nil)
            await reopened.close()
        }
    }

    @Test("due requests are claimed under a lease: not handed out again until it lapses or the poll is recorded", arguments: Backend.allCases)
    func leases(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            for id in ["R-1", "R-2", "R-3"] { try await store.track(Self.request(id)) }
            #expect(try await store.claimDueRequests(now: 2_999, limit: 10, lease: 30_000).isEmpty)  // not due yet
            let first = try await store.claimDueRequests(now: 3_000, limit: 2, lease: 30_000)
            #expect(first.map(\.requestId) == ["R-1", "R-2"])
            let second = try await store.claimDueRequests(now: 3_000, limit: 10, lease: 30_000)
            #expect(second.map(\.requestId) == ["R-3"])
            #expect(try await store.claimDueRequests(now: 32_999, limit: 10, lease: 30_000).isEmpty)
            // A claimer that died: its leases lapse and the requests are handed out again.
            let retaken = try await store.claimDueRequests(now: 33_000, limit: 10, lease: 30_000)
            #expect(retaken.count == 3)
            // The first claimer, late: its claim is no longer the request's, so nothing it says is written.
            let stale = try #require(first.first)
            #expect(try await store.recordPoll(stale, outcome: Self.outcome([], state: .completed), now: 33_500) == false)
            #expect(try await store.request(id: "R-1")?.0.state == .tracking)
            // The current claimer's poll is recorded, releases the claim and sets the next time.
            let current = try #require(retaken.first { $0.requestId == "R-1" })
            #expect(try await store.recordPoll(current, outcome: Self.outcome([], next: 40_000), now: 34_000))
            #expect(try await store.recordPoll(current, outcome: Self.outcome([], next: 50_000), now: 34_100) == false)  // once
            #expect(try await store.claimDueRequests(now: 40_000, limit: 10, lease: 30_000).map(\.requestId) == ["R-1"])
            await store.close()
        }
    }

    @Test("a final result and its event are written together; a result once final is not changed, nor its event doubled", arguments: Backend.allCases)
    func outbox(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            try await store.track(Self.request("R-1"))
            let pending = StoredResult(messageId: "m-1", isFinal: false, json: #"{"status":"processing"}"#)
            let done = StoredResult(messageId: "m-2", isFinal: true, json: #"{"status":"completed"}"#)
            var claimed = try #require(try await store.claimDueRequests(now: 3_000, limit: 1, lease: 1_000).first)
            #expect(try await store.recordPoll(claimed, outcome: Self.outcome([pending, done], next: 3_500), now: 3_000))
            var events = try await store.claimDueEvents(now: 3_000, limit: 10, lease: 10_000)
            #expect(events.map(\.messageId) == ["m-2"])
            #expect(events.first?.body == #"{"type":"delivery.completed","data":{"status":"completed"}}"#)
            #expect(events.first?.caller == "orders")
            // The next poll: m-1 final now, m-2 reported again (no second event, no change).
            let later = StoredResult(messageId: "m-1", isFinal: true, json: #"{"status":"completed","n":1}"#)
            let changed = StoredResult(messageId: "m-2", isFinal: true, json: #"{"status":"changed"}"#)
            claimed = try #require(try await store.claimDueRequests(now: 4_000, limit: 1, lease: 1_000).first)
            #expect(try await store.recordPoll(claimed, outcome: Self.outcome([later, changed], state: .completed), now: 4_000))
            let (request, results) = try #require(try await store.request(id: "R-1"))
            #expect(request.state == .completed)
            #expect(request.polls == 2)
            #expect(results.map(\.json) == [#"{"status":"completed","n":1}"#, #"{"status":"completed"}"#])
            events = try await store.claimDueEvents(now: 4_000, limit: 10, lease: 10_000)
            #expect(events.map(\.messageId) == ["m-1"])  // m-2's is still claimed
            await store.close()
        }
    }

    @Test("delivery attempts: retried with the same id, delivered, or failed and queued again", arguments: Backend.allCases)
    func attempts(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            try await store.track(Self.request("R-1"))
            let done = StoredResult(messageId: "m-1", isFinal: true, json: "{}")
            let claimed = try #require(try await store.claimDueRequests(now: 3_000, limit: 1, lease: 1_000).first)
            #expect(try await store.recordPoll(claimed, outcome: Self.outcome([done], state: .completed), now: 3_000))
            let event = try #require(try await store.claimDueEvents(now: 3_000, limit: 10, lease: 10_000).first)
            #expect(try await store.recordAttempt(event, delivered: false, retryAt: 8_000))
            #expect(try await store.claimDueEvents(now: 7_999, limit: 10, lease: 10_000).isEmpty)
            let retried = try #require(try await store.claimDueEvents(now: 8_000, limit: 10, lease: 10_000).first)
            #expect(retried.id == event.id)
            #expect(retried.attempts == 1)
            // The first attempt's claim is spent: a late word from it changes nothing.
            #expect(try await store.recordAttempt(event, delivered: true, retryAt: nil) == false)
            #expect(try await store.recordAttempt(retried, delivered: false, retryAt: nil))
            #expect(try await store.events(state: .failed, caller: "orders", limit: 10).map(\.id) == [event.id])
            #expect(try await store.events(state: .failed, caller: "billing", limit: 10).isEmpty)
            #expect(try await store.redeliver(eventId: event.id, caller: "billing", now: 9_000) == false)
            #expect(try await store.redeliver(eventId: event.id, caller: "orders", now: 9_000))
            let again = try #require(try await store.claimDueEvents(now: 9_000, limit: 10, lease: 10_000).first)
            #expect(try await store.recordAttempt(again, delivered: true, retryAt: nil))
            // A delivered event is never made pending again.
            #expect(try await store.recordAttempt(again, delivered: false, retryAt: 10_000) == false)
            #expect(try await store.events(state: .delivered, caller: nil, limit: 10).map(\.id) == [event.id])
            #expect(try await store.claimDueEvents(now: 100_000, limit: 10, lease: 10_000).isEmpty)
            await store.close()
        }
    }

    @Test("concurrent writers: every transaction commits whole, none interleaves", arguments: Backend.allCases)
    func concurrent(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await store.track(Self.request("R-\(index)"))
                        let result = StoredResult(messageId: "m", isFinal: true, json: "{}")
                        var claimed = Self.request("R-\(index)")
                        claimed.claim = "never-claimed"
                        #expect(try await store.recordPoll(claimed, outcome: Self.outcome([result], state: .completed), now: 3_000) == false)
                    }
                }
                try await group.waitForAll()
            }
            // Fifty claims at once, all recorded.
            let claimed = try await store.claimDueRequests(now: 3_000, limit: 100, lease: 1_000)
            #expect(claimed.count == 50)
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for request in claimed {
                    group.addTask {
                        try await store.recordPoll(
                            request, outcome: Self.outcome([StoredResult(messageId: "m", isFinal: true, json: "{}")], state: .completed), now: 3_000)
                    }
                }
                for try await recorded in group { #expect(recorded) }
            }
            #expect(try await store.claimDueEvents(now: 3_000, limit: 100, lease: 1_000).count == 50)
            await store.close()
        }
    }

    @Test("a task cancelled in the middle of its writes leaves no transaction open: the store goes on", arguments: Backend.allCases)
    func cancelled(backend: Backend) async throws {
        try await backend.withStore { store, reopen in
            let writer = Task {
                for index in 0..<400 { try? await store.track(Self.request("C-\(index)")) }
            }
            try await Task.sleep(for: .milliseconds(30))
            writer.cancel()
            _ = await writer.value
            try await store.track(Self.request("after"))
            #expect(try await store.request(id: "after") != nil)
            await store.close()
        }
    }

    @Test("the embedded store is a fleet of one: its heartbeat counts one replica, whoever asks")
    func heartbeatAlone() async throws {
        try await Self.withDirectory { directory in
            let store = try await SQLiteStore.open(directory: directory, logger: Self.logger)
            #expect(try await store.heartbeat(replica: "a", liveFor: 3_000) == 1)
            #expect(try await store.heartbeat(replica: "b", liveFor: 3_000) == 1)
            await store.close()
        }
    }

    @Test("the store's file is the owner's only, and an event's id is stable and distinct")
    func fileModeAndIds() async throws {
        try await Self.withDirectory { directory in
            let store = try await SQLiteStore.open(directory: directory, logger: Self.logger)
            var info = stat()
            #expect(stat(directory + "/sensgate.sqlite", &info) == 0)
            #expect(info.st_mode & 0o077 == 0)
            await store.close()
        }
        #expect(StoredEvent.id(requestId: "R-1", messageId: "m-1") == StoredEvent.id(requestId: "R-1", messageId: "m-1"))
        #expect(StoredEvent.id(requestId: "R-1", messageId: "m-1") != StoredEvent.id(requestId: "R-1m", messageId: "-1"))
        #expect(StoredEvent.id(requestId: "R-1", messageId: "m-1").utf8.count == 36)
    }

    @Test("an unwritable data-dir is refused with a reason")
    func unwritable() async throws {
        await #expect(throws: StoreError.self) { try await SQLiteStore.open(directory: "/proc/sensgate-no-such-dir", logger: Self.logger) }
    }
}
