import DeliveryResults
import JSON
import NIOCore
import Prometheus
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

    /// Immutable and shared: a hit hands out one reference, not a copy of the result's many strings.
    final class Entry: Sendable {
        let result: DeliveryResult
        /// SENS's body, for `include=raw`.
        let raw: [UInt8]
        /// The unified JSON without `raw`, written once; answered as it is (a buffer is shared, not copied).
        let json: ByteBuffer
        /// The `sensgate_delivery_results_total` series this result counts in, found once when it is made.
        let series: Prometheus.Counter?

        init(result: DeliveryResult, raw: [UInt8], json: [UInt8], series: Prometheus.Counter? = nil) {
            self.result = result
            self.raw = raw
            self.json = ByteBuffer(bytes: json)
            self.series = series
        }

        /// What the entry costs the cache's byte bound: its two bodies, and the result they were made from (about the
        /// size of its JSON).
        var weight: Int { self.raw.count + 2 * self.json.readableBytes }

        /// The unified JSON, with SENS's own under `raw` when asked (written then; the plain form is reused).
        func body(includeRaw: Bool) -> ByteBuffer {
            guard includeRaw else { return self.json }
            var writer = JSONWriter(capacity: self.json.readableBytes + self.raw.count + 16)
            self.result.write(into: &writer, raw: self.raw)
            return ByteBuffer(bytes: writer.bytes)
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

        /// What a free slot holds.
        private static let vacant = Entry(result: DeliveryResult.expired(channel: .sms, serviceId: "", messageId: "", requestId: ""), raw: [], json: [])

        private mutating func remove(_ slot: Int) {
            self.unlink(slot)
            self.index[self.nodes[slot].key] = nil
            self.bytes -= self.nodes[slot].entry.weight
            // Drop the entry now rather than when the slot is reused.
            self.nodes[slot].entry = Self.vacant
            self.free.append(slot)
        }
    }
}

/// Identical lookups in flight share one call: the first caller for a key starts it, the others wait for its value.
/// Waiters are callbacks, not tasks: a lookup runs on event loops and the upstream client's thread only.
final class Coalescer<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let waiting = Mutex<[Key: [@Sendable (Value) -> Void]]>([:])

    /// Waits for the run in flight for `key`, or starts one.
    /// - Returns: `true` when no run was in flight: the caller runs it and calls ``finish(_:with:)``, and `waiter`
    ///   gets the value like every other.
    func join(_ key: Key, waiter: @escaping @Sendable (Value) -> Void) -> Bool {
        self.waiting.withLock { waiting in
            if waiting[key] != nil {
                waiting[key]?.append(waiter)
                return false
            }
            waiting[key] = [waiter]
            return true
        }
    }

    /// Ends the run for `key`: every waiter gets `value`, on the calling thread.
    func finish(_ key: Key, with value: Value) {
        let waiters = self.waiting.withLock { $0.removeValue(forKey: key) ?? [] }
        for waiter in waiters { waiter(value) }
    }
}
