import Foundation
import PostgresTestServer
#if canImport(Glibc)
import Glibc
#endif
import GatewayServer
import Logging
import NIOCore
import NIOPosix
import SENSMock
import Store
import ServiceLifecycle
import Signing
import Synchronization
import Testing
import UpstreamClient

/// Log lines captured from a gateway under test (a sink of its own: no global logging bootstrap in tests).
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ bytes: [UInt8]) {
        let line = String(decoding: bytes, as: UTF8.self)
        self.lines.withLock { $0.append(line) }
    }

    var all: [String] { self.lines.withLock { $0 } }

    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "sensgate") { label in JSONLogHandler(label: label, sink: { self.append($0) }) }
        logger.logLevel = level
        return logger
    }
}

/// A running mock upstream and gateway on ephemeral loopback ports, and a curl client pointed at the gateway.
struct TestGateway: Sendable {
    static let accessKey = "TESTACCESSKEY0001"
    static let secret = "test-secret-do-not-leak-8c1f2e"

    let mock: SENSMock
    let port: Int
    let client: UpstreamClient
    let logs: LogCapture
    let gateway: Gateway
    /// The gateway's store, a SQLite file in a directory of the test's own.
    let store: SQLiteStore
    /// The store's directory.
    let dataDir: String

    /// Runs `body` against a fresh mock and gateway, and stops both afterwards.
    /// - Parameters:
    ///   - mockSecret: The secret the mock verifies with (a different one makes every signature wrong).
    ///   - upstream: Overrides the upstream URL (e.g. a closed port); the mock still runs.
    ///   - tls: Puts the mock behind TLS (HTTP/2 by ALPN) and points the gateway at `https://localhost:…`.
    ///   - deliveryDelay: How long the mock takes to complete a message it accepted.
    ///   - configure: Adjusts the gateway's configuration.
    static func run(
        mockSecret: String = secret,
        deliveryDelay: Duration = .seconds(3),
        upstream: String? = nil,
        tls: TLSUpstream.Setup? = nil,
        configure: @Sendable (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestGateway) async throws -> Void
    ) async throws {
        try await LoadGate.scope {
            try await Self.runGated(
                mockSecret: mockSecret, deliveryDelay: deliveryDelay, upstream: upstream, tls: tls, configure: configure, body)
        }
    }

    private static func runGated(
        mockSecret: String, deliveryDelay: Duration, upstream: String?, tls: TLSUpstream.Setup?,
        configure: @Sendable (inout GatewayConfiguration) -> Void, _ body: @Sendable (TestGateway) async throws -> Void
    ) async throws {
        let mock = SENSMock(accessKey: accessKey, secretKey: SecretKey(mockSecret), deliveryDelay: deliveryDelay)
        let mockPort = try await mock.start()
        let front: TLSUpstream? = if let tls { try await TLSUpstream.start(mock: mock, setup: tls) } else { nil }
        let authorityFile: String? = if let tls, tls.trustTestAuthority { try TLSUpstream.authorityFile() } else { nil }
        defer { if let authorityFile { try? FileManager.default.removeItem(atPath: authorityFile) } }
        let origin = front.map { "https://localhost:\($0.port)" } ?? upstream ?? "http://127.0.0.1:\(mockPort)"
        var configuration = GatewayConfiguration(
            accessKey: accessKey, secretKey: SecretKey(secret), upstream: origin,
            listenHost: "127.0.0.1", listenPort: 0)
        configuration.upstreamCAFile = authorityFile
        configuration.smsServiceID = Fixtures.smsServiceID
        configuration.brandMessageServiceID = Fixtures.brandMessageServiceID
        configuration.alimTalkServiceID = Fixtures.alimTalkServiceID
        // Tests count upstream calls; the cache is on only where a test asks for it.
        configuration.cacheTTL = .zero
        // A loaded machine may take seconds to commit a tracking record; the tests check the record, not the deadline.
        configuration.trackCommitDeadline = .seconds(30)
        configure(&configuration)
        let logs = LogCapture()
        let logger = logs.logger(level: .trace)
        let dataDir = NSTemporaryDirectory() + "sensgate-test-\(UUID().uuidString)"
        let store = try await SQLiteStore.open(directory: dataDir, logger: logger)
        let gateway = try Gateway(configuration: configuration, logger: logger, logSink: { logs.append($0) }, store: store)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = gateway.makeApplication { port in portContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let client = try UpstreamClient(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:\(port)", requestTimeout: .seconds(20)))
            let running = TestGateway(mock: mock, port: port, client: client, logs: logs, gateway: gateway, store: store, dataDir: dataDir)
            do {
                try await body(running)
            } catch {
                await client.shutdown()
                await group.triggerGracefulShutdown()
                await front?.stop()
                await mock.stop()
                await store.close()
                throw error
            }
            await client.shutdown()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await store.close()
        await front?.stop()
        await mock.stop()
    }

    /// Sends one request to the gateway through libcurl.
    func send(_ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String? = nil) async throws -> TestResponse {
        let response = try await self.client.execute(
            UpstreamRequest(method: method, target: target, headers: headers, body: body.map { ByteBuffer(string: $0) }))
        return TestResponse(status: response.status, contentType: response.contentType, body: Array(response.body.readableBytesView))
    }
}

/// What the gateway answered.
struct TestResponse: Sendable {
    var status: Int
    var contentType: String?
    var body: [UInt8]
    var headers: [(String, String)] = []

    var text: String { String(decoding: self.body, as: UTF8.self) }

    /// The body parsed as a JSON object (Foundation, independent of the gateway's own JSON code).
    func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(self.body), options: [.fragmentsAllowed])
        return try #require(object as? [String: Any], "not a JSON object: \(self.text)")
    }

    /// The contract's error envelope, as (code, class, retryable, upstreamStatus).
    func error() throws -> (code: String, errorClass: String, retryable: Bool, upstreamStatus: Int?, requestId: String?) {
        let envelope = try #require(try self.json()["error"] as? [String: Any], "no error envelope: \(self.text)")
        return (
            try #require(envelope["code"] as? String), try #require(envelope["class"] as? String),
            try #require(envelope["retryable"] as? Bool), envelope["upstreamStatus"] as? Int, envelope["requestId"] as? String
        )
    }

    func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Sends exact bytes over a fresh TCP connection and reads until the server closes it: for request-targets and
/// headers that no well-behaved client library would send.
enum RawHTTP {
    static func exchange(port: Int, _ request: String, timeout: Duration = .seconds(10)) async throws -> TestResponse {
        guard let response = try await Self.exchangeMany(port: port, request, count: 1, timeout: timeout).first else {
            throw RawHTTPError.malformed("the connection closed before a complete response")
        }
        return response
    }

    /// Sends exact bytes (several pipelined requests, say) and reads `count` responses in the order they arrive;
    /// with `untilClosed`, also waits for the server to close the connection (a timeout if it does not).
    /// With `halfClose`, shuts the sending side once the bytes are written, as a client that has nothing more to say.
    static func exchangeMany(
        port: Int, _ request: String, count: Int, untilClosed: Bool = false, halfClose: Bool = false, timeout: Duration = .seconds(10)
    ) async throws -> [TestResponse] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let received = try await withThrowingTaskGroup(of: [TestResponse]?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: request))
                    if halfClose { outbound.finish() }
                    var bytes: [UInt8] = []
                    var responses: [TestResponse] = []
                    for try await chunk in inbound {
                        bytes += chunk.readableBytesView
                        while let length = Self.completeLength(bytes) {
                            responses.append(try Self.parse(Array(bytes[..<length])))
                            bytes.removeFirst(length)
                        }
                        if responses.count >= count && !untilClosed { break }
                    }
                    return responses
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let received else { throw RawHTTPError.timedOut }
        return received
    }

    /// The length of the first complete response in `bytes`, if there is one.
    static func completeLength(_ bytes: [UInt8]) -> Int? {
        guard let split = Self.headerEnd(bytes) else { return nil }
        let head = String(decoding: bytes[..<split], as: UTF8.self).lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
            bytes.count >= split + 4 + length
        else { return nil }
        return split + 4 + length
    }

    enum RawHTTPError: Error { case timedOut, malformed(String) }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    static func parse(_ bytes: [UInt8]) throws -> TestResponse {
        guard let split = Self.headerEnd(bytes) else { throw RawHTTPError.malformed(String(decoding: bytes, as: UTF8.self)) }
        let lines = String(decoding: bytes[..<split], as: UTF8.self).split(separator: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw RawHTTPError.malformed(String(lines.first ?? "")) }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let contentType = headers.first { $0.0.lowercased() == "content-type" }?.1
        return TestResponse(status: status, contentType: contentType, body: Array(bytes[(split + 4)...]), headers: headers)
    }
}

/// A port nothing listens on. A low, privileged port rather than a freed ephemeral one: tests run in parallel and
/// bind ephemeral ports, so a port just closed can be taken again by another test's server.
func closedPort() async throws -> Int {
    for port in [1, 7, 9, 11, 13, 17, 19] {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try await channel.close()
        } catch {
            return port  // refused: nothing there
        }
    }
    throw RawHTTP.RawHTTPError.malformed("every candidate port has a listener")
}

/// Runs blocking work (a read that waits, a loop that sleeps, a thread fan-out) on a thread of its own. On the test
/// run's cooperative threads (two, on a 2-core machine) it would stall every other test's tasks meanwhile — a client
/// that cannot write its request in time, a relay that stops relaying.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// A port to listen on, for a server started as a separate process (see ``ListenPort``).
func freePort() async throws -> Int {
    try ListenPort.reserve()
}

/// A real `sensgate serve` process (the binary as shipped, not a gateway in the test process) in front of a fresh mock.
struct ServeProcess {
    let process: Process
    let port: Int
    let mock: SENSMock
    /// The process's standard output (its access log); nobody reads it unless a test does.
    let output: Pipe

    /// Its store's directory (created by serve), never the working directory's.
    let dataDir: String
    let mockPort: Int

    static let secret = "serve-process-secret"

    /// Starts the mock and `sensgate serve` pointed at it, and waits until it serves.
    /// - Parameters:
    ///   - environment: Settings beyond the key pair (which the mock knows).
    ///   - restarting: An earlier process whose mock and data-dir the new one takes over (after it was killed).
    ///   - alongside: Another replica whose mock (one SENS account) the new one shares; its store is its own
    ///     setting's (a fleet shares a PostgreSQL database through `environment`).
    static func start(
        environment: [String: String] = [:], deliveryDelay: Duration = .seconds(3), restarting earlier: ServeProcess? = nil,
        alongside replica: ServeProcess? = nil
    ) async throws -> ServeProcess {
        let secret = Self.secret
        let shared = earlier ?? replica
        let mock = shared?.mock ?? SENSMock(accessKey: "AK", secretKey: SecretKey(secret), deliveryDelay: deliveryDelay)
        let mockPort: Int
        if let shared { mockPort = shared.mockPort } else { mockPort = try await mock.start() }
        let port = try await freePort()
        let process = Process()
        process.executableURL = try sensgateExecutable()
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--upstream", "http://127.0.0.1:\(mockPort)"]
        let dataDir = earlier?.dataDir ?? NSTemporaryDirectory() + "sensgate-serve-\(UUID().uuidString)"
        process.environment = ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": secret, "SENSGATE_DATA_DIR": dataDir].merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = Pipe()
        try process.run()
        ServeProcess.started.withLock { started in
            if started.isEmpty { atexit { ServeProcess.killAll() } }
            started.insert(process.processIdentifier)
        }
        let running = ServeProcess(process: process, port: port, mock: mock, output: output, dataDir: dataDir, mockPort: mockPort)
        do {
            try await waitUntilServing(port: port)
        } catch {
            await running.stop()
            throw error
        }
        return running
    }

    /// Every process a test started and has not ended: killed when the test run exits, so that a test that failed
    /// before its `stop` (or whose deferred stop never ran) leaves no `sensgate serve` behind.
    private static let started = Mutex<Set<Int32>>([])

    private static func killAll() {
        for pid in Self.started.withLock({ $0 }) { Glibc.kill(pid, SIGKILL) }
    }

    /// `kill -9`: no shutdown, no flush, nothing closed.
    func kill() {
        Glibc.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
        _ = Self.started.withLock { $0.remove(self.process.processIdentifier) }
    }

    /// Ends the process (if still running) and the mock.
    func stop() async {
        self.terminate()
        await self.mock.stop()
    }

    /// Ends the process, synchronously: for a `defer`, where an awaited stop cannot run.
    func terminate() {
        if self.process.isRunning { self.process.terminate() }
        _ = Self.started.withLock { $0.remove(self.process.processIdentifier) }
    }
}

/// Waits until a `sensgate serve` started as a separate process answers `/healthz` (at most about 15 s: a debug build
/// starting on a loaded 2-core machine).
func waitUntilServing(port: Int) async throws {
    for _ in 0..<600 {
        let health = try? await RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(1))
        if health?.status == 200 { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("sensgate serve did not start on port \(port)")
    throw RawHTTP.RawHTTPError.malformed("sensgate serve did not start")
}

/// The `sensgate` executable built next to the test bundle.
func sensgateExecutable() throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("sensgate")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    let fallback = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/sensgate")
    guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
        throw RawHTTP.RawHTTPError.malformed("sensgate executable not found near \(CommandLine.arguments[0])")
    }
    return fallback
}

extension RawHTTP {
    /// Sends `bytes` and closes the connection at once, without reading: a client that vanishes.
    static func sendAndClose(port: Int, _ bytes: String) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: bytes))
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {
            // The server answered the cut request and closed first: gone either way.
        }
    }

    /// Sends `bytes` and waits for the server to close the connection.
    /// - Returns: How long the server took to close it, or `nil` if it was still open after `limit`.
    static func timeUntilClosed(port: Int, sending bytes: String, limit: Duration) async throws -> Duration? {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let start = ContinuousClock.now
        return try await withThrowingTaskGroup(of: Duration?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    do {
                        // On a loaded machine the server may close before the bytes are written: closed either way.
                        if !bytes.isEmpty { try await outbound.write(ByteBuffer(string: bytes)) }
                        for try await _ in inbound {}
                    } catch {}
                    return ContinuousClock.now - start
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            if first == nil { try? await channel.channel.close() }
            return first
        }
    }
}
