import ServiceLifecycle
import UnixSignals

/// Reloads the secret key and caller tokens on SIGHUP, and the caller tokens whenever their file changes.
struct ReloadService: Service {
    let gateway: Gateway
    /// How often the caller tokens file is checked for changes.
    var pollInterval: Duration = .seconds(2)

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    try? self.gateway.reload()
                }
            }
            if let path = self.gateway.configuration.callerTokensFile {
                group.addTask {
                    var last = Self.contents(of: path)
                    while !Task.isShuttingDownGracefully && !Task.isCancelled {
                        try? await Task.sleep(for: self.pollInterval)
                        let now = Self.contents(of: path)
                        if now != last {
                            last = now
                            // The tokens file changed: only it is re-read (a key rotation waits for SIGHUP).
                            try? self.gateway.reload(secretKey: false)
                        }
                    }
                }
            }
            try await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// The file's text, or `nil` when it cannot be read. A tokens file is small: comparing its text catches every
    /// change, even one within the same second and of the same size, which a modification time would not.
    static func contents(of path: String) -> String? {
        try? ConfigurationLoader.readTextFile(path)
    }
}
