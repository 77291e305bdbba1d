import ArgumentParser
import FoundationEssentials
import GatewayServer
import Logging
import ServiceLifecycle
import Store
import UnixSignals

/// `sensgate serve`: runs the gateway until SIGTERM or SIGINT, then drains in-flight requests and exits 0.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Settings come from flags, then environment variables, then the YAML file given by --config \
            (or SENSGATE_CONFIG). A missing or bad setting prints one line on stderr and exits with 2. \
            The secret key is never a flag: use NCP_SECRET_KEY or --secret-key-file.
            """
    )

    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let configuration = try self.settings.resolveOrExit()
        let logger = LogSetup.bootstrapJSON(level: configuration.logLevel)
        if configuration.callerTokens == nil && !["127.0.0.1", "::1", "localhost"].contains(configuration.listenHost) {
            Console.error(
                "warning: listening on \(configuration.listenHost) without caller tokens: anyone who can reach this port can send through your SENS account (set --caller-tokens-file)")
        }
        // The store opens before anything listens: an unwritable data-dir or an unreachable database stops serve here,
        // with one line.
        let store: any DeliveryStore
        do {
            store = try await StoreSetup.open(
                configuration.store, dataDir: configuration.dataDir, passwordFile: configuration.storePasswordFile,
                poolSize: configuration.storePoolSize, logger: logger, owner: true)
        } catch {
            Console.error(error.description)
            throw ExitCode(2)
        }
        let gateway: Gateway
        do {
            gateway = try Gateway(configuration: configuration, logger: logger, store: store)
        } catch {
            await store.close()
            Console.error(error.description)
            throw ExitCode(2)
        }
        let app = gateway.makeApplication { port in
            logger.notice("listening", metadata: ["address": "\(configuration.listenHost):\(port)", "upstream": "\(configuration.upstream)"])
        }
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await store.close()
            LogWriter.standardOutput.flush()
            Console.error("stopped: \(error)")
            throw ExitCode(1)
        }
        // After the server has drained: the last tracking records are committed.
        await store.close()
        // Log lines still buffered for the writer thread go out before the process ends.
        LogWriter.standardOutput.flush()
    }
}

enum LogSetup {
    /// Installs the JSON line handler for the whole process and returns the gateway's logger.
    static func bootstrapJSON(level: Logger.Level) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "sensgate")
        logger.logLevel = level
        return logger
    }

    /// A logger for one-shot commands: errors only, to stderr-free JSON on stdout is not wanted there.
    static func quiet() -> Logger {
        var logger = Logger(label: "sensgate") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }
}

/// The settings flags shared by `serve`, `lookup` and `sign` (environment variables and `--config` fill the rest).
struct SettingsOptions: ParsableArguments {
    @Option(help: "host:port to listen on (SENSGATE_LISTEN; default 127.0.0.1:8080).")
    var listen: String?
    @Option(help: "SENS base URL (SENSGATE_UPSTREAM; default https://sens.apigw.ntruss.com).")
    var upstream: String?
    @Option(help: "YAML file with any of the settings (SENSGATE_CONFIG).")
    var config: String?
    @Option(name: .customLong("access-key"), help: "NCP access key ID (NCP_ACCESS_KEY).")
    var accessKey: String?
    @Option(name: .customLong("secret-key-file"), help: "File holding the NCP secret key (SENSGATE_SECRET_KEY_FILE).")
    var secretKeyFile: String?
    @Option(name: .customLong("sms-service-id"), help: "Default SMS service ID for /v1 lookups (SENSGATE_SMS_SERVICE_ID).")
    var smsServiceID: String?
    @Option(name: .customLong("brandmessage-service-id"), help: "Default Brand Message service ID (SENSGATE_BRANDMESSAGE_SERVICE_ID).")
    var brandMessageServiceID: String?
    @Option(name: .customLong("alimtalk-service-id"), help: "Default AlimTalk service ID (SENSGATE_ALIMTALK_SERVICE_ID).")
    var alimTalkServiceID: String?
    @Option(name: .customLong("upstream-timeout"), help: "Seconds for a whole upstream call (SENSGATE_UPSTREAM_TIMEOUT; default 10).")
    var upstreamTimeout: String?
    @Option(name: .customLong("upstream-ca-file"), help: "PEM CAs to trust for an https upstream instead of the system's (SENSGATE_UPSTREAM_CA_FILE).")
    var upstreamCAFile: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (SENSGATE_LOG_LEVEL).")
    var logLevel: String?
    @Option(name: .customLong("caller-tokens-file"), help: "YAML file of caller names and tokens (SENSGATE_CALLER_TOKENS_FILE).")
    var callerTokensFile: String?
    @Option(name: .customLong("data-dir"), help: "Directory of the embedded store (SENSGATE_DATA_DIR; default ./sensgate-data).")
    var dataDir: String?
    @Option(help: "embedded, or postgres://user@host:port/db for a fleet (SENSGATE_STORE; default embedded).")
    var store: String?
    @Option(name: .customLong("store-password-file"), help: "File holding the PostgreSQL password (SENSGATE_STORE_PASSWORD_FILE; else PGPASSWORD).")
    var storePasswordFile: String?
    @Option(name: .customLong("store-pool-size"), help: "PostgreSQL connections per replica (SENSGATE_STORE_POOL_SIZE; default 10).")
    var storePoolSize: String?
    @Flag(name: .customLong("track"), help: "Track every send to its final result when no caller tokens are configured (SENSGATE_TRACK).")
    var track = false
    @Option(name: .customLong("track-rate"), help: "The tracker's calls per second to SENS (SENSGATE_TRACK_RATE; default 20).")
    var trackRate: String?
    @Option(name: .customLong("track-max-age"), help: "Seconds a tracked request is followed before it expires (SENSGATE_TRACK_MAX_AGE; default 259200).")
    var trackMaxAge: String?
    @Option(name: .customLong("webhook-url"), help: "Where delivery events go without a caller's own webhook (SENSGATE_WEBHOOK_URL).")
    var webhookURL: String?
    @Option(name: .customLong("webhook-secret-file"), help: "File holding the webhook's whsec_ signing secret (SENSGATE_WEBHOOK_SECRET_FILE).")
    var webhookSecretFile: String?
    @Option(name: .customLong("webhook-max-age"), help: "Seconds an undelivered event is retried (SENSGATE_WEBHOOK_MAX_AGE; default 86400).")
    var webhookMaxAge: String?
    @Option(name: .customLong("idempotency-ttl"), help: "Seconds an Idempotency-Key and its answer are kept (SENSGATE_IDEMPOTENCY_TTL; default 86400).")
    var idempotencyTTL: String?

    var flags: [String: String] {
        var flags: [String: String] = [:]
        flags["listen"] = self.listen
        flags["upstream"] = self.upstream
        flags["access-key"] = self.accessKey
        flags["secret-key-file"] = self.secretKeyFile
        flags["sms-service-id"] = self.smsServiceID
        flags["brandmessage-service-id"] = self.brandMessageServiceID
        flags["alimtalk-service-id"] = self.alimTalkServiceID
        flags["upstream-timeout"] = self.upstreamTimeout
        flags["upstream-ca-file"] = self.upstreamCAFile
        flags["log-level"] = self.logLevel
        flags["caller-tokens-file"] = self.callerTokensFile
        flags["data-dir"] = self.dataDir
        flags["store"] = self.store
        flags["store-password-file"] = self.storePasswordFile
        flags["store-pool-size"] = self.storePoolSize
        if self.track { flags["track"] = "true" }
        flags["track-rate"] = self.trackRate
        flags["track-max-age"] = self.trackMaxAge
        flags["webhook-url"] = self.webhookURL
        flags["webhook-secret-file"] = self.webhookSecretFile
        flags["webhook-max-age"] = self.webhookMaxAge
        flags["idempotency-ttl"] = self.idempotencyTTL
        return flags
    }


    /// Resolves flags, then environment, then the YAML file; a missing or bad setting is one line on stderr and exit 2.
    func resolveOrExit() throws(ExitCode) -> GatewayConfiguration {
        do {
            return try ConfigurationLoader.resolve(flags: self.flags, environment: ProcessInfo.processInfo.environment, configFile: self.config)
        } catch {
            Console.error(error.description)
            throw ExitCode(2)
        }
    }
}
