package import Signing
import Synchronization

/// Holds the current signer so the key pair can be replaced while serving (key rotation).
package final class CredentialStore: Sendable {
    private let current: Mutex<Signer>

    package init(_ signer: Signer) {
        self.current = Mutex(signer)
    }

    package var signer: Signer { self.current.withLock { $0 } }

    package func replace(with signer: Signer) {
        self.current.withLock { $0 = signer }
    }
}
