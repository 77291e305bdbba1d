// Tests only: a throwaway PostgreSQL cluster for the test run — never a system-wide server.
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL cluster of the test run's own: `initdb` into a temporary directory, started on a free loopback port
/// (as the `postgres` user when the tests run as root, since PostgreSQL refuses to run as root), password
/// authentication over TCP, and killed when the test run exits. Each test takes a database of its own.
public final class PostgresTestServer: Sendable {
    public let port: Int
    public let user = "sensgate"
    public static let password = "sensgate-test-password"
    private let directory: String
    private let binaries: String

    private init(port: Int, directory: String, binaries: String) {
        self.port = port
        self.directory = directory
        self.binaries = binaries
    }

    /// The run's cluster, started by the first test that asks.
    public static func shared() async throws -> PostgresTestServer {
        try await Self.starting.value
    }

    private static let starting = Task { try await PostgresTestServer.start() }

    /// Every cluster the run started: its directory and, while it runs, its postmaster's process id (for the exit
    /// handler, which stops them and removes the directories).
    private static let running = Mutex<[String: Int32?]>([:])

    /// A new, empty database on the cluster; its name.
    public func makeDatabase() async throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await self.psql("postgres", "CREATE DATABASE \(name)")
        return name
    }

    /// Runs one SQL statement with psql (over TCP, with the password: as the store connects).
    @discardableResult
    public func psql(_ database: String, _ sql: String) async throws -> String {
        try await Self.run(
            self.binaries + "/psql",
            ["-h", "127.0.0.1", "-p", String(self.port), "-U", self.user, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            environment: ["PGPASSWORD": Self.password], asPostgres: false)
    }

    /// A cluster of its own, for a test that stops and starts it (an outage): never the shared one.
    public static func start() async throws -> PostgresTestServer {
        guard let binaries = Self.findBinaries() else {
            throw Failure("PostgreSQL is not installed (apt-get install postgresql; .ci/run and scripts/install-deps.sh do)")
        }
        var template = Array("/tmp/sensgate-pg-XXXXXX".utf8CString)
        guard let directory = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) } })
        else { throw Failure("mkdtemp failed") }
        let first = Self.running.withLock { running in
            defer { running[directory] = .some(nil) }
            return running.isEmpty
        }
        if first { atexit { PostgresTestServer.stopAtExit() } }
        try Self.password.write(toFile: directory + "/password", atomically: true, encoding: .utf8)
        if getuid() == 0 {
            guard let account = getpwnam("postgres") else { throw Failure("running as root, and there is no postgres user to run PostgreSQL as") }
            for path in [directory, directory + "/password"] { chown(path, account.pointee.pw_uid, account.pointee.pw_gid) }
        }
        try await Self.run(
            binaries + "/initdb",
            ["-D", directory + "/data", "-U", "sensgate", "--pwfile=" + directory + "/password", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
        // Started on a port found free; another process may take it first, so a failed start tries another.
        for _ in 0..<5 {
            let server = PostgresTestServer(port: try ListenPort.reserve(), directory: directory, binaries: binaries)
            do {
                try await server.resume()
            } catch {
                continue
            }
            return server
        }
        let log = (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
        throw Failure("PostgreSQL did not start: \(log.suffix(2000))")
    }

    /// Starts the cluster (again, after ``halt()``) on its port, and waits until it accepts connections.
    public func resume() async throws {
        let options = "-p \(self.port) -k \(self.directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        try await Self.run(self.binaries + "/pg_ctl", ["-D", self.directory + "/data", "-l", self.directory + "/log", "-w", "-t", "60", "-o", options, "start"])
        let pidText = (try? String(contentsOfFile: self.directory + "/data/postmaster.pid", encoding: .utf8)) ?? ""
        let pid = pidText.split(separator: "\n").first.flatMap { Int32($0) }
        Self.running.withLock { $0[self.directory] = .some(pid) }
    }

    /// Stops the cluster at once (`pg_ctl stop -m immediate`: connections cut, no checkpoint — what committed stays,
    /// as after a crash), keeping its data for ``resume()``.
    public func halt() async throws {
        try await Self.run(self.binaries + "/pg_ctl", ["-D", self.directory + "/data", "-m", "immediate", "-w", "stop"])
        Self.running.withLock { $0[self.directory] = .some(nil) }
    }

    /// Freezes every process of the cluster (`SIGSTOP` to the postmaster and its children): a database that hangs —
    /// connections stay open, nothing answers — rather than one that refuses. ``thaw()`` lets it go on.
    public func freeze() throws { try self.signalAll(SIGSTOP) }

    /// Lets a frozen cluster go on (`SIGCONT`): statements sent meanwhile run then.
    public func thaw() throws { try self.signalAll(SIGCONT) }

    private func signalAll(_ signal: Int32) throws {
        guard let postmaster = Self.running.withLock({ $0[self.directory] ?? nil }) else { throw Failure("the cluster is not running") }
        Self.signal(signal, postmasterAndChildren: postmaster)
    }

    private static func signal(_ signal: Int32, postmasterAndChildren postmaster: pid_t) {
        var pids = [postmaster]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // pid (comm) state ppid …
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == postmaster { pids.append(pid) }
        }
        for pid in pids { kill(pid, signal) }
    }

    /// Immediate shutdown (SIGQUIT to each postmaster), then the directories removed.
    private static func stopAtExit() {
        for (directory, pid) in Self.running.withLock({ $0 }) {
            if let pid {
                // A run that ends while a test has the cluster frozen: every process must go on to hear the quit.
                Self.signal(SIGCONT, postmasterAndChildren: pid)
                kill(pid, SIGQUIT)
                for _ in 0..<200 where kill(pid, 0) == 0 { usleep(10_000) }
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    private static func findBinaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        return versions.map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// Runs a command to its end (as `postgres` when root, for the server's own tools) on a thread of its own (not one
    /// of the test run's pool); its output, or a failure with it. Spawned and waited for directly: Foundation's
    /// `Process` counts a command as running while anything it started holds an inherited descriptor, and `pg_ctl
    /// start` leaves the server running.
    @discardableResult
    private static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], asPostgres: Bool = true)
        async throws -> String
    {
        let command = asPostgres && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let output = NSTemporaryDirectory() + "sensgate-pg-\(UUID().uuidString).out"
        defer { unlink(output) }
        let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            Thread {
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
                // Nothing else of the test process: the server would otherwise hold, for the whole run, whatever
                // descriptor was open at that moment — a socket another test had bound to find a free port.
                if let closeFrom = Self.closeFrom { _ = closeFrom(&actions, 3) }
                let argv = command.map { strdup($0) } + [nil]
                let envp = variables.map { strdup($0) } + [nil]
                defer { (argv + envp).forEach { free($0) } }
                var pid: pid_t = 0
                let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
                guard spawned == 0 else {
                    continuation.resume(throwing: Failure("cannot run \(command[0]): \(String(cString: strerror(spawned)))"))
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                continuation.resume(returning: status)
            }.start()
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw Failure("\(URL(fileURLWithPath: executable).lastPathComponent) exited with status \(status): \(text.suffix(2000))")
        }
        return text
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not export.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
