import Synchronization

/// A count shared between threads (client connections open now; log drops already reported), as a class so that
/// value types can hold it.
final class AtomicCount: Sendable {
    let value = Atomic<Int>(0)
}
