import Foundation
import SENSMock
import Signing
import Store
import Logging
import Testing

/// The `sensgate` executable itself, run as a child process.
@Suite("Command line")
struct CommandLineTests {
    struct Run: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `sensgate` with exactly `environment` (nothing inherited) and waits for it, at most `timeout`.
    static func sensgate(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)) async throws -> Run {
        let process = Process()
        process.executableURL = try sensgateExecutable()
        process.arguments = arguments
        // The store of a serve that starts goes to a directory of its own.
        process.environment = ["SENSGATE_DATA_DIR": NSTemporaryDirectory() + "sensgate-\(UUID().uuidString)"].merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            process.terminate()
            Issue.record("sensgate \(arguments) did not finish within \(timeout)")
        }
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus,
            stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
            stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    static let startupErrors: [(String, [String], [String: String], String)] = [
        ("no access key", ["serve"], ["NCP_SECRET_KEY": "s"], "access key"),
        ("no secret key", ["serve"], ["NCP_ACCESS_KEY": "AK"], "secret key"),
        ("bad listen", ["serve", "--listen", "localhost"], ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "listen"),
        ("bad port", ["serve"], ["SENSGATE_LISTEN": "127.0.0.1:99999", "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "listen"),
        ("bad upstream", ["serve", "--upstream", "ftp://x"], ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "upstream"),
        ("unwritable data-dir", ["serve", "--data-dir", "/proc/sensgate"], ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "data-dir"),
        ("bad track", ["serve"], ["SENSGATE_TRACK": "maybe", "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "track"),
        ("upstream with a path", ["serve"], ["SENSGATE_UPSTREAM": "https://x/y", "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "upstream"),
        ("bad timeout", ["serve"], ["SENSGATE_UPSTREAM_TIMEOUT": "soon", "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "upstream-timeout"),
        ("missing key file", ["serve", "--secret-key-file", "/nonexistent/key"], ["NCP_ACCESS_KEY": "AK"], "secret key file"),
        ("missing config", ["serve", "--config", "/nonexistent.yaml"], ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "config file"),
        ("unknown flag", ["serve", "--colour", "blue"], [:], "colour"),
        ("bad webhook URL", ["serve", "--webhook-url", "ftp://hooks/x", "--webhook-secret-file", "/dev/null"],
         ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "webhook"),
        ("unreadable webhook secret", ["serve", "--webhook-url", "https://hooks.example/x", "--webhook-secret-file", "/nonexistent/whsec"],
         ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "/nonexistent/whsec"),
        ("webhook without its secret", ["serve"], ["SENSGATE_WEBHOOK_URL": "https://hooks.example/x", "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"],
         "webhook-secret-file"),
        ("bad track-rate", ["serve", "--track-rate", "0"], ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s"], "track-rate"),
    ]

    @Test("a missing or bad setting prints one line on stderr and exits with 2", arguments: startupErrors)
    func startupError(_ name: String, _ arguments: [String], _ environment: [String: String], _ mention: String) async throws {
        let run = try await Self.sensgate(arguments, environment: environment)
        #expect(run.status == 2, "\(name): \(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(name): \(run.stderr)")
        #expect(run.stderr.contains(mention), "\(name): \(run.stderr)")
        #expect(!run.stderr.contains("NCP_SECRET_KEY=s"))
    }

    @Test("SIGTERM lets the request in flight finish, then exits 0")
    func gracefulDrain() async throws {
        let serve = try await ServeProcess.start()
        let (process, port, mock, out) = (serve.process, serve.port, serve.mock, serve.output)
        defer { Task { await serve.stop() } }

        // Under load: 40 requests in flight, each answered by the mock after two seconds.
        let inFlight = Task {
            try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        try await RawHTTP.exchange(
                            port: port, "GET /sms/v2/services/s/messages/fault-delay-2000?n=\(index) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    }
                }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
        }
        // SIGTERM once all 40 are in flight (at the upstream): those must finish; new work may be refused.
        for _ in 0..<500 where mock.receivedRequests.count < 40 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(mock.receivedRequests.count == 40)
        kill(process.processIdentifier, SIGTERM)
        let responses = try await inFlight.value
        #expect(responses.count == 40)
        // The mock's answer for an unknown id, after the delay: none was cut off.
        #expect(responses.allSatisfy { $0.status == 404 && $0.text.contains("Not Found") })
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
        #expect(!process.isRunning)
        #expect(process.terminationStatus == 0)
        let logs = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(logs.contains(#""msg":"request""#))
        #expect(!logs.contains("serve-process-secret"))
    }

    @Test("sensgate demo runs the tour through the gateway and exits with --once")
    func demo() async throws {
        let run = try await Self.sensgate(["demo", "--listen", "127.0.0.1:0", "--once"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("HTTP 202"))
        #expect(run.stdout.contains("3018"))
        #expect(run.stdout.contains("RSMA-demo-0001"))
        #expect(run.stdout.contains("not_found"))
        // The unified results beside their SENS bodies: the four kinds.
        #expect(run.stdout.contains(#""schema": "sensgate.delivery-result.v1""#))
        #expect(run.stdout.contains(#""deliveredVia": "sms""#))
        #expect(run.stdout.contains(#""class": "pending""#))
        #expect(run.stdout.contains(#""class": "permanent""#))
        #expect(run.stdout.contains(#""class": "success""#))
        // The tracked SMS and the AlimTalk that fell back to SMS: each followed to the end and pushed, signed.
        #expect(run.stdout.components(separatedBy: "(signature verified)").count == 3, "\(run.stdout.suffix(1500))")
        #expect(run.stdout.contains("completed, class success, delivered via sms"))
        #expect(!run.stdout.contains("INVALID"))
    }

    @Test("sensgate track and sensgate events read serve's store; --redeliver queues a failed event again")
    func operatorTools() async throws {
        let directory = NSTemporaryDirectory() + "sensgate-cli-\(UUID().uuidString)"
        let store = try await SQLiteStore.open(directory: directory, logger: Logger(label: "test"))
        try await store.track(TrackedRequest(requestId: "RCLI-1", channel: "sms", serviceId: "s", caller: "billing", acceptedAt: 1_000, nextPollAt: 0))
        let claimed = try #require(try await store.claimDueRequests(now: 5_000, limit: 1, lease: 60_000).first)
        let outcome = PollOutcome(
            results: [StoredResult(messageId: "m-1", isFinal: true, json: #"{"messageId":"m-1","class":"success"}"#)], state: .completed,
            nextPollAt: 0, eventBody: { #"{"type":"delivery.completed","data":\#($0.json)}"# })
        #expect(try await store.recordPoll(claimed, outcome: outcome, now: 5_000))
        let event = try #require(try await store.claimDueEvents(now: 6_000, limit: 1, lease: 60_000).first)
        #expect(try await store.recordAttempt(event, delivered: false, retryAt: nil))
        await store.close()

        let track = try await Self.sensgate(["track", "RCLI-1", "--data-dir", directory])
        #expect(track.status == 0, "\(track.stderr)")
        #expect(track.stdout.contains(#""state": "completed""#))
        #expect(track.stdout.contains("m-1"))
        let missing = try await Self.sensgate(["track", "RCLI-404", "--data-dir", directory])
        #expect(missing.status == 1)
        let failed = try await Self.sensgate(["events", "--data-dir", directory])
        #expect(failed.status == 0, "\(failed.stderr)")
        #expect(failed.stdout.contains(event.id))
        let queued = try await Self.sensgate(["events", "--data-dir", directory, "--redeliver", event.id])
        #expect(queued.status == 0, "\(queued.stderr)")
        let pending = try await Self.sensgate(["events", "--data-dir", directory, "--state", "pending"])
        #expect(pending.stdout.contains(event.id))
        #expect(try await Self.sensgate(["events", "--data-dir", directory, "--redeliver", event.id]).status == 1)
        #expect(try await Self.sensgate(["events", "--data-dir", "/nonexistent/store"]).status == 2)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test("--help and --version")
    func help() async throws {
        let help = try await Self.sensgate(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("serve"))
        #expect(help.stdout.contains("demo"))
        let version = try await Self.sensgate(["--version"])
        #expect(version.status == 0)
        #expect(!version.stdout.isEmpty)
    }
}
