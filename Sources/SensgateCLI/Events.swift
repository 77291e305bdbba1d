import ArgumentParser
import FoundationEssentials
import GatewayServer
import JSON
import Signing
import Store

/// Where the operator tools find the store: `--store` (else `SENSGATE_STORE`, else embedded) and, for the embedded
/// one, `--data-dir` (else `SENSGATE_DATA_DIR`, else `./sensgate-data`).
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Directory of the embedded store (SENSGATE_DATA_DIR; default ./sensgate-data).")
    var dataDir: String?
    @Option(help: "embedded, or serve's postgres://user@host:port/db (SENSGATE_STORE; default embedded).")
    var store: String?
    @Option(name: .customLong("store-password-file"), help: "File holding the PostgreSQL password (SENSGATE_STORE_PASSWORD_FILE; else PGPASSWORD).")
    var storePasswordFile: String?

    /// Opens the store beside a running `serve` (SQLite's WAL allows it; PostgreSQL is shared anyway): claims are left
    /// alone.
    func open() async throws(ExitCode) -> any DeliveryStore {
        let environment = ProcessInfo.processInfo.environment
        let directory = self.dataDir ?? environment["SENSGATE_DATA_DIR"] ?? "./sensgate-data"
        do {
            let location = try StoreLocation(parsing: self.store ?? environment["SENSGATE_STORE"] ?? "embedded")
            if location == .embedded && !FileManager.default.fileExists(atPath: directory + "/sensgate.sqlite") {
                Console.error("no store in \(directory) (set --data-dir or SENSGATE_DATA_DIR to serve's)")
                throw ExitCode(2)
            }
            return try await StoreSetup.open(
                location, dataDir: directory, passwordFile: self.storePasswordFile ?? environment["SENSGATE_STORE_PASSWORD_FILE"], poolSize: 2,
                logger: LogSetup.quiet(), owner: false)
        } catch let error as StoreError {
            Console.error(error.description)
            throw ExitCode(2)
        } catch {
            throw ExitCode(2)
        }
    }
}

/// `sensgate events`: the webhook events in the store — those given up by default — and redelivery of one.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List webhook events (failed by default), or queue a failed one again.",
        discussion: "Reads the store serve writes (it may be running). Prints JSON, as GET /v1/events answers, for every caller.")

    @OptionGroup var store: StoreOptions
    @Option(help: "failed, pending or delivered.")
    var state = "failed"
    @Option(help: "Only this caller's events.")
    var caller: String?
    @Option(help: "At most this many events.")
    var limit = 100
    @Option(help: "Queue this failed event again (its attempts and webhook-max-age start again).")
    var redeliver: String?

    func run() async throws {
        guard let state = StoredEvent.State(rawValue: self.state) else {
            Console.error("state \"\(self.state)\" is not one of failed, pending, delivered")
            throw ExitCode(2)
        }
        let store = try await self.store.open()
        defer { Task { await store.close() } }
        do {
            if let id = self.redeliver {
                guard try await store.redeliver(eventId: id, caller: self.caller, now: Signer.nowMilliseconds()) else {
                    Console.error("no failed event \(id)")
                    await store.close()
                    throw ExitCode(1)
                }
                Console.out("queued \(id) again")
            } else {
                let events = try await store.events(state: state, caller: self.caller, limit: max(1, min(self.limit, 10_000)))
                Console.out(JSONPretty.format(TrackingJSON.events(events)))
            }
        } catch let error as StoreError {
            Console.error(error.description)
            await store.close()
            throw ExitCode(1)
        }
        await store.close()
    }

}

/// `sensgate track <requestId>`: one tracked request as the store has it.
struct Track: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a tracked send: its state and each message's latest unified result.",
        discussion: "Reads the store serve writes (it may be running). Exit 1 when the request is not tracked.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "SENS's requestId of the send.")
    var requestId: String

    func run() async throws {
        let store = try await self.store.open()
        do {
            guard let (request, results) = try await store.request(id: self.requestId) else {
                Console.error("request \(self.requestId) is not tracked")
                await store.close()
                throw ExitCode(1)
            }
            Console.out(JSONPretty.format(TrackingJSON.request(request, results: results)))
        } catch let error as StoreError {
            Console.error(error.description)
            await store.close()
            throw ExitCode(1)
        }
        await store.close()
    }
}
