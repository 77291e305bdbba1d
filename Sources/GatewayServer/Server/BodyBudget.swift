import Synchronization

/// The request-body bytes all connections may hold at once: the memory budget that keeps a few hundred large POSTs
/// from taking the process past its container's limit. A body that does not fit is refused before it is read.
final class BodyBudget: Sendable {
    /// Bytes that may be held at once.
    let capacity: Int
    private let held = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Takes `bytes` from the budget if they fit.
    func reserve(_ bytes: Int) -> Bool {
        let total = self.held.wrappingAdd(bytes, ordering: .relaxed).newValue
        guard total <= self.capacity else {
            self.held.wrappingSubtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    func release(_ bytes: Int) {
        self.held.wrappingSubtract(bytes, ordering: .relaxed)
    }
}
