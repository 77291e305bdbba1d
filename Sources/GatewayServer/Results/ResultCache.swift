import DeliveryResults
import JSON
import Synchronization

/// Completed delivery results, kept for a while: a completed result never changes upstream, so repeats are served
/// without a call to SENS.
///
/// Bounded in entries and in bytes (least recently used entries go first) and time-limited. Split into shards by key hash so concurrent
/// lookups rarely wait on one another's lock.
final class ResultCache: Sendable {
    struct Key: Hashable, Sendable {
        var channel: DeliveryChannel
        var serviceId: String
        var messageId: String
    }

    struct Entry: Sendable {
        var result: DeliveryResult
        /// SENS's body, for `include=raw`.
        var raw: [UInt8]
        /// The unified JSON without `raw`, written once.
        var json: [UInt8]

        /// What the entry costs the cache's byte bound: its two bodies, and the result they were made from (about the
        /// size of its JSON).
        var weight: Int { self.raw.count + 2 * self.json.count }

        /// The unified JSON, with SENS's own under `raw` when asked (written then; the plain form is reused).
        func body(includeRaw: Bool) -> [UInt8] {
            guard includeRaw else { return self.json }
            var writer = JSONWriter(capacity: self.json.count + self.raw.count + 16)
            self.result.write(into: &writer, raw: self.raw)
            return writer.bytes
        }
    }

    private let shards: [Shard]
    let ttl: Duration

    /// - Parameters:
    ///   - capacity: Entries kept in all; 0 turns the cache off.
    ///   - maxBytes: Bytes kept in all (``Entry/weight``).
    ///   - ttl: How long an entry is served.
    init(capacity: Int, maxBytes: Int = 32 << 20, ttl: Duration) {
        let shardCount = capacity >= 64 ? 16 : 1
        let perShard = capacity == 0 ? 0 : max(1, capacity / shardCount)
        self.shards = (0..<shardCount).map { _ in Shard(capacity: perShard, maxBytes: maxBytes / shardCount) }
        self.ttl = ttl
    }

    var isEnabled: Bool { self.ttl > .zero && self.shards.count > 0 }

    func get(_ key: Key, now: ContinuousClock.Instant = .now) -> Entry? {
        guard self.isEnabled else { return nil }
        return self.shard(for: key).lru.withLock { $0.get(key, now: now) }
    }

    /// Keeps a result if it is final (anything but `pending`).
    func put(_ key: Key, _ entry: Entry, now: ContinuousClock.Instant = .now) {
        guard self.isEnabled, entry.result.resultClass != .pending else { return }
        self.shard(for: key).lru.withLock { $0.put(key, entry, expires: now + self.ttl) }
    }

    var count: Int { self.shards.reduce(0) { total, shard in total + shard.lru.withLock { $0.count } } }

    /// Bytes held now (``Entry/weight``).
    var bytes: Int { self.shards.reduce(0) { total, shard in total + shard.lru.withLock { $0.bytes } } }

    final class Shard: Sendable {
        let lru: Mutex<LRU>

        init(capacity: Int, maxBytes: Int) {
            self.lru = Mutex(LRU(capacity: capacity, maxBytes: maxBytes))
        }
    }

    private func shard(for key: Key) -> Shard {
        self.shards[Int(UInt(bitPattern: key.hashValue) % UInt(self.shards.count))]
    }

    /// A least-recently-used map over an array of nodes linked by index: no allocation per hit.
    struct LRU {
        struct Node {
            var key: Key
            var entry: Entry
            var expires: ContinuousClock.Instant
            var previous: Int
            var next: Int
        }

        let capacity: Int
        let maxBytes: Int
        private(set) var bytes = 0
        private var index: [Key: Int] = [:]
        private var nodes: [Node] = []
        private var head = -1  // most recently used
        private var tail = -1  // least recently used
        private var free: [Int] = []

        init(capacity: Int, maxBytes: Int) {
            self.capacity = capacity
            self.maxBytes = maxBytes
        }

        var count: Int { self.index.count }

        mutating func get(_ key: Key, now: ContinuousClock.Instant) -> Entry? {
            guard let slot = self.index[key] else { return nil }
            guard self.nodes[slot].expires > now else {
                self.remove(slot)
                return nil
            }
            self.moveToFront(slot)
            return self.nodes[slot].entry
        }

        mutating func put(_ key: Key, _ entry: Entry, expires: ContinuousClock.Instant) {
            guard self.capacity > 0, entry.weight <= self.maxBytes else { return }
            if let slot = self.index[key] { self.remove(slot) }
            while self.tail >= 0 && (self.index.count >= self.capacity || self.bytes + entry.weight > self.maxBytes) {
                self.remove(self.tail)
            }
            self.bytes += entry.weight
            let node = Node(key: key, entry: entry, expires: expires, previous: -1, next: self.head)
            let slot: Int
            if let reused = self.free.popLast() {
                slot = reused
                self.nodes[slot] = node
            } else {
                slot = self.nodes.count
                self.nodes.append(node)
            }
            if self.head >= 0 { self.nodes[self.head].previous = slot }
            self.head = slot
            if self.tail < 0 { self.tail = slot }
            self.index[key] = slot
        }

        private mutating func unlink(_ slot: Int) {
            let previous = self.nodes[slot].previous
            let next = self.nodes[slot].next
            if previous >= 0 { self.nodes[previous].next = next } else { self.head = next }
            if next >= 0 { self.nodes[next].previous = previous } else { self.tail = previous }
        }

        private mutating func moveToFront(_ slot: Int) {
            guard slot != self.head else { return }
            self.unlink(slot)
            self.nodes[slot].previous = -1
            self.nodes[slot].next = self.head
            if self.head >= 0 { self.nodes[self.head].previous = slot }
            self.head = slot
            if self.tail < 0 { self.tail = slot }
        }

        private mutating func remove(_ slot: Int) {
            self.unlink(slot)
            self.index[self.nodes[slot].key] = nil
            self.bytes -= self.nodes[slot].entry.weight
            // Drop the entry's buffers now rather than when the slot is reused.
            self.nodes[slot].entry = Entry(result: self.nodes[slot].entry.result, raw: [], json: [])
            self.free.append(slot)
        }
    }
}

/// Lets identical concurrent operations share one run: the first caller runs it in its own task, the others wait
/// for its value.
final class Coalescer<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let waiting = Mutex<[Key: [CheckedContinuation<Value?, Never>]]>([:])

    /// Runs `operation` for `key`, or joins the run already in flight for it.
    /// - Returns: The value, and whether it came from another caller's run.
    func run(_ key: Key, operation: () async -> Value) async -> (Value, shared: Bool) {
        let leads = self.waiting.withLock { waiting -> Bool in
            guard waiting[key] == nil else { return false }
            waiting[key] = []
            return true
        }
        if !leads {
            // Joined under the lock, so the run cannot finish between the check and the wait; if it has finished
            // meanwhile, this caller runs the operation itself.
            let joined: Value? = await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let waits = self.waiting.withLock { waiting -> Bool in
                    guard waiting[key] != nil else { return false }
                    waiting[key]?.append(continuation)
                    return true
                }
                if !waits { continuation.resume(returning: nil) }
            }
            if let joined { return (joined, true) }
            return await self.run(key, operation: operation)
        }
        let value = await operation()
        let waiters = self.waiting.withLock { $0.removeValue(forKey: key) ?? [] }
        for waiter in waiters { waiter.resume(returning: value) }
        return (value, false)
    }
}
