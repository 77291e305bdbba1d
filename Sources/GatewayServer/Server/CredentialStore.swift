import Signing
import Synchronization

/// Holds the current signer so the key pair can be replaced while serving (key rotation).
final class CredentialStore: Sendable {
    private let current: Mutex<Signer>

    init(_ signer: Signer) {
        self.current = Mutex(signer)
    }

    var signer: Signer { self.current.withLock { $0 } }

    func replace(with signer: Signer) {
        self.current.withLock { $0 = signer }
    }
}
