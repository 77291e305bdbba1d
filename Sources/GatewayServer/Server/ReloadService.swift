#if canImport(Glibc)
import Glibc
#endif
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
                    var last = Self.modification(of: path)
                    while !Task.isShuttingDownGracefully && !Task.isCancelled {
                        try? await Task.sleep(for: self.pollInterval)
                        let now = Self.modification(of: path)
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

    /// The file's modification time and size, or `nil` when it cannot be read.
    static func modification(of path: String) -> [Int]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_size)]
    }
}
