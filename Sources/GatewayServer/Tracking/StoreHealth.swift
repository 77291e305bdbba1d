import Synchronization

/// Whether the store works, as last seen: a failed operation marks it down, the gauges' count every 5 s marks it up
/// again. `/readyz` reports it (PRODUCT.md §8: caller traffic keeps flowing, readiness says which part is down).
final class StoreHealth: Sendable {
    private let down = Atomic<Bool>(false)

    var isAvailable: Bool { !self.down.load(ordering: .relaxed) }

    func failed() { self.down.store(true, ordering: .relaxed) }

    func succeeded() { self.down.store(false, ordering: .relaxed) }
}
