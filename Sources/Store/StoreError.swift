/// A store failure: what could not be done, and why, safe to log (never a stored body).
public struct StoreError: Error, Sendable, CustomStringConvertible {
    private enum Code: String, Sendable {
        case unavailable
        case schemaTooNew
        case corrupt
    }

    private let code: Code
    /// What went wrong, for the log and the one line `serve` prints when the store cannot be opened.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The store could not be reached or written (a missing or read-only `data-dir`, a full disk, a lock held too
    /// long): transient for callers (`503 store_unavailable`).
    public static func unavailable(_ message: String) -> StoreError { StoreError(.unavailable, message) }

    /// The store was written by a newer sensgate: this one will not touch it.
    public static func schemaTooNew(found: Int, known: Int) -> StoreError {
        StoreError(.schemaTooNew, "the store's schema is version \(found); this sensgate knows up to \(known)")
    }

    /// A stored row is not what this schema writes.
    public static func corrupt(_ message: String) -> StoreError { StoreError(.corrupt, message) }

    /// Whether trying again later may succeed.
    public var isTransient: Bool { self.code == .unavailable }

    public var description: String { "store \(self.code.rawValue): \(self.message)" }
}
