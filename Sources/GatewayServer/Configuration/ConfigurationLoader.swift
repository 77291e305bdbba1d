import SENSClient
import Store
import FoundationEssentials
import Logging
public import Signing
import UpstreamClient

/// Resolves a ``GatewayConfiguration`` from flags, environment and a YAML file, in that order of precedence.
public enum ConfigurationLoader {
    /// One setting: its flag/YAML name and its environment variable.
    struct Setting {
        let key: String
        let environment: String?
        let defaultValue: String?
    }

    static let settings: [Setting] = [
        Setting(key: "listen", environment: "SENSGATE_LISTEN", defaultValue: "127.0.0.1:8080"),
        Setting(key: "upstream", environment: "SENSGATE_UPSTREAM", defaultValue: "https://sens.apigw.ntruss.com"),
        Setting(key: "access-key", environment: "NCP_ACCESS_KEY", defaultValue: nil),
        Setting(key: "secret-key", environment: "NCP_SECRET_KEY", defaultValue: nil),
        Setting(key: "secret-key-file", environment: "SENSGATE_SECRET_KEY_FILE", defaultValue: nil),
        Setting(key: "sms-service-id", environment: "SENSGATE_SMS_SERVICE_ID", defaultValue: nil),
        Setting(key: "brandmessage-service-id", environment: "SENSGATE_BRANDMESSAGE_SERVICE_ID", defaultValue: nil),
        Setting(key: "alimtalk-service-id", environment: "SENSGATE_ALIMTALK_SERVICE_ID", defaultValue: nil),
        Setting(key: "upstream-timeout", environment: "SENSGATE_UPSTREAM_TIMEOUT", defaultValue: "10"),
        Setting(key: "upstream-connect-timeout", environment: "SENSGATE_UPSTREAM_CONNECT_TIMEOUT", defaultValue: "3"),
        Setting(key: "upstream-ca-file", environment: "SENSGATE_UPSTREAM_CA_FILE", defaultValue: nil),
        Setting(key: "max-body-bytes", environment: "SENSGATE_MAX_BODY_BYTES", defaultValue: "1048576"),
        Setting(key: "max-response-bytes", environment: "SENSGATE_MAX_RESPONSE_BYTES", defaultValue: "4194304"),
        Setting(key: "max-buffered-body-bytes", environment: "SENSGATE_MAX_BUFFERED_BODY_BYTES", defaultValue: "67108864"),
        Setting(key: "max-buffered-response-bytes", environment: "SENSGATE_MAX_BUFFERED_RESPONSE_BYTES", defaultValue: "67108864"),
        Setting(key: "log-level", environment: "SENSGATE_LOG_LEVEL", defaultValue: "info"),
        Setting(key: "upstream-retries", environment: "SENSGATE_UPSTREAM_RETRIES", defaultValue: "2"),
        Setting(key: "upstream-retry-backoff", environment: "SENSGATE_UPSTREAM_RETRY_BACKOFF", defaultValue: "0.1"),
        Setting(key: "upstream-rate", environment: "SENSGATE_UPSTREAM_RATE", defaultValue: "0"),
        Setting(key: "upstream-burst", environment: "SENSGATE_UPSTREAM_BURST", defaultValue: nil),
        Setting(key: "upstream-max-in-flight", environment: "SENSGATE_UPSTREAM_MAX_IN_FLIGHT", defaultValue: "1024"),
        Setting(key: "breaker-threshold", environment: "SENSGATE_BREAKER_THRESHOLD", defaultValue: "5"),
        Setting(key: "breaker-cooldown", environment: "SENSGATE_BREAKER_COOLDOWN", defaultValue: "5"),
        Setting(key: "caller-tokens-file", environment: "SENSGATE_CALLER_TOKENS_FILE", defaultValue: nil),
        Setting(key: "client-timeout", environment: "SENSGATE_CLIENT_TIMEOUT", defaultValue: "10"),
        Setting(key: "max-connections", environment: "SENSGATE_MAX_CONNECTIONS", defaultValue: "10000"),
        Setting(key: "cache-size", environment: "SENSGATE_CACHE_SIZE", defaultValue: "10000"),
        Setting(key: "cache-ttl", environment: "SENSGATE_CACHE_TTL", defaultValue: "300"),
        Setting(key: "cache-bytes", environment: "SENSGATE_CACHE_BYTES", defaultValue: "33554432"),
        Setting(key: "store", environment: "SENSGATE_STORE", defaultValue: "embedded"),
        Setting(key: "store-password-file", environment: "SENSGATE_STORE_PASSWORD_FILE", defaultValue: nil),
        Setting(key: "store-pool-size", environment: "SENSGATE_STORE_POOL_SIZE", defaultValue: "10"),
        Setting(key: "data-dir", environment: "SENSGATE_DATA_DIR", defaultValue: "./sensgate-data"),
        Setting(key: "track", environment: "SENSGATE_TRACK", defaultValue: "false"),
        Setting(key: "track-rate", environment: "SENSGATE_TRACK_RATE", defaultValue: "20"),
        Setting(key: "track-max-age", environment: "SENSGATE_TRACK_MAX_AGE", defaultValue: "259200"),
        Setting(key: "webhook-url", environment: "SENSGATE_WEBHOOK_URL", defaultValue: nil),
        Setting(key: "webhook-secret-file", environment: "SENSGATE_WEBHOOK_SECRET_FILE", defaultValue: nil),
        Setting(key: "webhook-max-age", environment: "SENSGATE_WEBHOOK_MAX_AGE", defaultValue: "86400"),
        Setting(key: "idempotency-ttl", environment: "SENSGATE_IDEMPOTENCY_TTL", defaultValue: "86400"),
    ]

    /// Every key a YAML file may hold.
    public static var keys: [String] { settings.map(\.key) }

    /// Resolves the configuration.
    /// - Parameters:
    ///   - flags: Settings given on the command line, by key (`secret-key` is not accepted there: it would show in `ps`).
    ///   - environment: The process environment.
    ///   - configFile: The YAML file from `--config`; `SENSGATE_CONFIG` is used when `nil`.
    ///   - readFile: Reads a file's text (injected for tests).
    /// - Throws: ``ConfigurationError`` naming the first missing or bad setting.
    public static func resolve(
        flags: [String: String],
        environment: [String: String],
        configFile: String? = nil,
        readFile: ((String) throws -> String)? = nil
    ) throws(ConfigurationError) -> GatewayConfiguration {
        let readFile = readFile ?? Self.readTextFile
        if flags["secret-key"] != nil {
            throw ConfigurationError("the secret key cannot be a flag (it would be visible in the process list): use --secret-key-file")
        }
        var file: [String: String] = [:]
        if let path = configFile ?? environment["SENSGATE_CONFIG"] {
            file = try Self.loadYAML(path: path, readFile: readFile)
        }

        // Which layer a value came from matters only for the secret: a key file in a higher layer beats a key in a lower one.
        func lookup(_ key: String) -> (value: String, layer: Int)? {
            guard let setting = settings.first(where: { $0.key == key }) else { return nil }
            if let value = flags[key] { return (value, 0) }
            if let name = setting.environment, let value = environment[name] { return (value, 1) }
            if let value = file[key] { return (value, 2) }
            if let value = setting.defaultValue { return (value, 3) }
            return nil
        }
        func value(_ key: String) -> String? { lookup(key)?.value }

        let (host, port) = try Self.parseListen(value("listen") ?? "")
        let upstream = value("upstream") ?? ""
        do {
            _ = try Origin(parsing: upstream)
        } catch {
            throw ConfigurationError("upstream \"\(upstream)\" is not valid: \(error.detail)")
        }

        guard let accessKey = value("access-key"), !accessKey.trimmingASCIIWhitespace.isEmpty else {
            throw ConfigurationError("the NCP access key is not set: set NCP_ACCESS_KEY (or --access-key, or access-key in the config file)")
        }
        guard Self.isHeaderSafe(accessKey) else {
            throw ConfigurationError("the NCP access key contains characters that cannot go in an HTTP header")
        }

        let secretKey: SecretKey
        var secretKeyFile: String? = nil
        let inline = lookup("secret-key")
        let fromFile = lookup("secret-key-file")
        if let inline, let fromFile, inline.layer == fromFile.layer {
            throw ConfigurationError("both a secret key and a secret key file are set in the same place: keep one")
        }
        if let fromFile, inline.map({ fromFile.layer < $0.layer }) ?? true {
            secretKey = try Self.readSecretKey(path: fromFile.value, readFile: readFile)
            secretKeyFile = fromFile.value
        } else if let inline, !inline.value.isEmpty {
            secretKey = SecretKey(inline.value)
        } else {
            throw ConfigurationError(
                "the NCP secret key is not set: set NCP_SECRET_KEY or SENSGATE_SECRET_KEY_FILE (or --secret-key-file)")
        }

        var configuration = GatewayConfiguration(accessKey: accessKey, secretKey: secretKey, upstream: upstream, listenHost: host, listenPort: port)
        configuration.secretKeyFile = secretKeyFile
        configuration.smsServiceID = try Self.serviceID(value("sms-service-id"), key: "sms-service-id")
        configuration.brandMessageServiceID = try Self.serviceID(value("brandmessage-service-id"), key: "brandmessage-service-id")
        configuration.alimTalkServiceID = try Self.serviceID(value("alimtalk-service-id"), key: "alimtalk-service-id")
        configuration.upstreamTimeout = try Self.seconds(value("upstream-timeout"), key: "upstream-timeout")
        configuration.upstreamConnectTimeout = try Self.seconds(value("upstream-connect-timeout"), key: "upstream-connect-timeout")
        if let path = value("upstream-ca-file") {
            try Self.checkCertificateFile(path: path, readFile: readFile)
            configuration.upstreamCAFile = path
        }
        configuration.maxBodyBytes = try Self.byteCount(value("max-body-bytes"), key: "max-body-bytes")
        configuration.maxResponseBytes = try Self.byteCount(value("max-response-bytes"), key: "max-response-bytes")
        configuration.maxBufferedBodyBytes = try Self.byteCount(value("max-buffered-body-bytes"), key: "max-buffered-body-bytes")
        configuration.maxBufferedResponseBytes = try Self.byteCount(value("max-buffered-response-bytes"), key: "max-buffered-response-bytes")
        guard configuration.maxBufferedBodyBytes >= configuration.maxBodyBytes,
            configuration.maxBufferedResponseBytes >= configuration.maxResponseBytes
        else {
            throw ConfigurationError("max-buffered-body-bytes and max-buffered-response-bytes must be at least max-body-bytes and max-response-bytes")
        }
        configuration.retryPolicy = RetryPolicy(
            maxRetries: try Self.count(value("upstream-retries"), key: "upstream-retries", in: 0...10),
            baseBackoff: try Self.seconds(value("upstream-retry-backoff"), key: "upstream-retry-backoff"))
        guard let rate = Double(value("upstream-rate") ?? ""), rate >= 0, rate <= 1_000_000 else {
            throw ConfigurationError("upstream-rate \"\(value("upstream-rate") ?? "")\" must be calls per second from 0 (no limit) to 1000000")
        }
        configuration.upstreamRate = rate
        configuration.upstreamBurst =
            try value("upstream-burst").map { text throws(ConfigurationError) in try Self.count(text, key: "upstream-burst", in: 1...1_000_000) }
            ?? max(1, Int(rate.rounded(.up)))
        configuration.upstreamMaxInFlight = try Self.count(value("upstream-max-in-flight"), key: "upstream-max-in-flight", in: 1...100_000)
        configuration.breakerThreshold = try Self.count(value("breaker-threshold"), key: "breaker-threshold", in: 0...1000)
        configuration.breakerCooldown = try Self.seconds(value("breaker-cooldown"), key: "breaker-cooldown")
        configuration.callerTokensFile = value("caller-tokens-file")
        if let path = configuration.callerTokensFile {
            configuration.callerTokens = try Self.readCallerTokens(path: path, readFile: readFile)
        }
        configuration.clientTimeout = try Self.seconds(value("client-timeout"), key: "client-timeout")
        configuration.maxConnections = try Self.count(value("max-connections"), key: "max-connections", in: 1...1_000_000)
        configuration.cacheSize = try Self.count(value("cache-size"), key: "cache-size", in: 0...10_000_000)
        configuration.cacheBytes = try Self.byteCount(value("cache-bytes"), key: "cache-bytes")
        guard let ttl = Double(value("cache-ttl") ?? ""), ttl >= 0, ttl <= 86_400 else {
            throw ConfigurationError("cache-ttl \"\(value("cache-ttl") ?? "")\" must be seconds from 0 (no cache) to 86400")
        }
        configuration.cacheTTL = .milliseconds(Int64((ttl * 1000).rounded()))
        let level = value("log-level") ?? "info"
        guard let logLevel = Logger.Level(rawValue: level.lowercased()) else {
            throw ConfigurationError("log-level \"\(level)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        configuration.logLevel = logLevel
        configuration.dataDir = value("data-dir") ?? "./sensgate-data"
        guard !configuration.dataDir.isEmpty else { throw ConfigurationError("data-dir must not be empty") }
        do {
            configuration.store = try StoreLocation(parsing: value("store") ?? "embedded")
        } catch {
            throw ConfigurationError("store: \(error.message)")
        }
        configuration.storePasswordFile = value("store-password-file")
        guard let poolSize = Int(value("store-pool-size") ?? ""), (1...500).contains(poolSize) else {
            throw ConfigurationError("store-pool-size \"\(value("store-pool-size") ?? "")\" must be connections from 1 to 500")
        }
        configuration.storePoolSize = poolSize
        switch (value("track") ?? "false").lowercased() {
        case "true", "1", "yes": configuration.track = true
        case "false", "0", "no": configuration.track = false
        case let other: throw ConfigurationError("track \"\(other.prefix(16))\" must be true or false")
        }
        guard let trackRate = Double(value("track-rate") ?? ""), trackRate > 0, trackRate <= 100_000 else {
            throw ConfigurationError("track-rate \"\(value("track-rate") ?? "")\" must be calls per second above 0 and at most 100000")
        }
        configuration.trackRate = trackRate
        guard let maxAge = Int(value("track-max-age") ?? ""), maxAge >= 60, maxAge <= 90 * 86_400 else {
            throw ConfigurationError("track-max-age \"\(value("track-max-age") ?? "")\" must be whole seconds from 60 to 7776000 (90 days)")
        }
        configuration.trackSchedule.maxAge = .seconds(maxAge)
        switch (value("webhook-url"), value("webhook-secret-file")) {
        case (nil, nil):
            configuration.webhook = nil
        case (let url?, let file?):
            configuration.webhook = try WebhookTarget.load(url: url, secretFile: file, owner: "webhook-url", readFile: readFile)
        default:
            throw ConfigurationError("webhook-url and webhook-secret-file go together: set both or neither")
        }
        guard let webhookAge = Int(value("webhook-max-age") ?? ""), webhookAge >= 60, webhookAge <= 30 * 86_400 else {
            throw ConfigurationError("webhook-max-age \"\(value("webhook-max-age") ?? "")\" must be whole seconds from 60 to 2592000 (30 days)")
        }
        configuration.webhookSchedule.maxAge = .seconds(webhookAge)
        guard let keyTTL = Int(value("idempotency-ttl") ?? ""), keyTTL >= 60, keyTTL <= 30 * 86_400 else {
            throw ConfigurationError("idempotency-ttl \"\(value("idempotency-ttl") ?? "")\" must be whole seconds from 60 to 2592000 (30 days)")
        }
        configuration.idempotencyTTL = .seconds(keyTTL)
        return configuration
    }

    /// Reads a file's text as UTF-8.
    public static func readTextFile(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    /// A file's text, or an error that names the file (never its content).
    static func text(of path: String, named what: String, readFile: (String) throws -> String) throws(ConfigurationError) -> String {
        do {
            return try readFile(path)
        } catch {
            throw ConfigurationError("cannot read \(what) \(path)")
        }
    }

    /// Reads the secret key file: its text without surrounding white space, which must not be empty.
    public static func readSecretKey(path: String, readFile: (String) throws -> String = readTextFile) throws(ConfigurationError) -> SecretKey {
        let text = try Self.text(of: path, named: "the secret key file", readFile: readFile)
        let trimmed = String(text.trimmingASCIIWhitespace)
        guard !trimmed.isEmpty else { throw ConfigurationError("the secret key file \(path) is empty") }
        return SecretKey(trimmed)
    }

    /// Checks at start-up that the upstream CA file can be read and holds a PEM certificate, so a wrong path fails
    /// here rather than as TLS errors on every call.
    static func checkCertificateFile(path: String, readFile: (String) throws -> String) throws(ConfigurationError) {
        let text = try Self.text(of: path, named: "upstream-ca-file", readFile: readFile)
        guard text.contains("-----BEGIN CERTIFICATE-----") else {
            throw ConfigurationError("upstream-ca-file \(path) holds no PEM certificate")
        }
    }

    /// Reads and checks the caller tokens file.
    static func readCallerTokens(path: String, readFile: (String) throws -> String) throws(ConfigurationError) -> CallerTokens {
        let text = try Self.text(of: path, named: "the caller tokens file", readFile: readFile)
        return try CallerTokens(yaml: text, source: path, readFile: readFile)
    }

    static func loadYAML(path: String, readFile: (String) throws -> String) throws(ConfigurationError) -> [String: String] {
        let text = try Self.text(of: path, named: "the config file", readFile: readFile)
        let parsed: YAMLSubset.Node
        do {
            parsed = try YAMLSubset.parse(text)
        } catch {
            throw ConfigurationError("the config file \(path) is not valid YAML (\(error))")
        }
        if parsed == .null { return [:] }
        guard case .mapping(let entries) = parsed else {
            throw ConfigurationError("the config file \(path) must be a YAML mapping of setting names to values")
        }
        var result: [String: String] = [:]
        for (key, value) in entries {
            guard Self.keys.contains(key) else {
                throw ConfigurationError("unknown setting \"\(key)\" in \(path); known settings: \(Self.keys.joined(separator: ", "))")
            }
            guard case .scalar(let text) = value else {
                throw ConfigurationError("setting \"\(key)\" in \(path) must be a single value")
            }
            result[key] = text
        }
        return result
    }

    /// Splits `host:port` (IPv6 in brackets) and checks the port.
    public static func parseListen(_ text: String) throws(ConfigurationError) -> (String, Int) {
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigurationError("listen \"\(text)\" must be host:port, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("listen \"\(text)\" must be host:port with a port from 0 to 65535")
        }
        return (host, port)
    }

    static func seconds(_ text: String?, key: String) throws(ConfigurationError) -> Duration {
        guard let text, let value = Double(text), value > 0, value <= 3600 else {
            throw ConfigurationError("\(key) \"\(text ?? "")\" must be a number of seconds above 0 and at most 3600")
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    static func byteCount(_ text: String?, key: String) throws(ConfigurationError) -> Int {
        guard let text, let value = Int(text), value > 0, value <= 1 << 30 else {
            throw ConfigurationError("\(key) \"\(text ?? "")\" must be a whole number of bytes from 1 to 1073741824")
        }
        return value
    }

    static func count(_ text: String?, key: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text, let value = Int(text), range.contains(value) else {
            throw ConfigurationError("\(key) \"\(text ?? "")\" must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    static func serviceID(_ text: String?, key: String) throws(ConfigurationError) -> String? {
        guard let text else { return nil }
        guard !text.isEmpty, text.utf8.count <= 200, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ":-_.".contains($0)) }) else {
            throw ConfigurationError("\(key) \"\(text)\" is not a SENS service ID (e.g. ncp:sms:kr:123456789012:service)")
        }
        return text
    }

    static func isHeaderSafe(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }
}
