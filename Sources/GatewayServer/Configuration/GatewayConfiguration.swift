public import Logging
public import Signing

/// Everything `sensgate serve` needs, resolved and checked.
///
/// Settings come from flags, then environment variables, then the YAML file named by `--config` (or
/// `SENSGATE_CONFIG`); the first source that has a setting wins. Keys (flag and YAML name / environment variable):
/// - `listen` / `SENSGATE_LISTEN`: `host:port` to listen on, default `127.0.0.1:8080`.
/// - `upstream` / `SENSGATE_UPSTREAM`: SENS base URL, default `https://sens.apigw.ntruss.com`.
/// - `access-key` / `NCP_ACCESS_KEY`: NCP access key ID, required.
/// - `secret-key-file` / `SENSGATE_SECRET_KEY_FILE`, or `NCP_SECRET_KEY` (env) / `secret-key` (YAML): NCP secret
///   key, required.
/// - `sms-service-id`, `brandmessage-service-id`, `alimtalk-service-id` / `SENSGATE_SMS_SERVICE_ID`,
///   `SENSGATE_BRANDMESSAGE_SERVICE_ID`, `SENSGATE_ALIMTALK_SERVICE_ID`: default service IDs for `/v1` lookups.
/// - `upstream-timeout` / `SENSGATE_UPSTREAM_TIMEOUT`: seconds for a whole upstream call, default 10.
/// - `upstream-connect-timeout` / `SENSGATE_UPSTREAM_CONNECT_TIMEOUT`: seconds to connect, default 3.
/// - `max-body-bytes` / `SENSGATE_MAX_BODY_BYTES`: largest request body accepted, default 1048576.
/// - `max-response-bytes` / `SENSGATE_MAX_RESPONSE_BYTES`: largest upstream body accepted, default 4194304.
/// - `log-level` / `SENSGATE_LOG_LEVEL`: `trace` … `critical`, default `info`.
public struct GatewayConfiguration: Sendable {
    public var listenHost: String
    public var listenPort: Int
    public var upstream: String
    public var accessKey: String
    public var secretKey: SecretKey
    /// Where the secret key was read from, if a file (re-read on SIGHUP for key rotation).
    public var secretKeyFile: String?
    public var smsServiceID: String?
    public var brandMessageServiceID: String?
    public var alimTalkServiceID: String?
    public var upstreamTimeout: Duration
    public var upstreamConnectTimeout: Duration
    public var maxBodyBytes: Int
    public var maxResponseBytes: Int
    public var logLevel: Logger.Level

    /// Creates a configuration with the spec's defaults for everything but the key pair.
    public init(
        accessKey: String,
        secretKey: SecretKey,
        upstream: String = "https://sens.apigw.ntruss.com",
        listenHost: String = "127.0.0.1",
        listenPort: Int = 8080
    ) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.upstream = upstream
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.secretKeyFile = nil
        self.smsServiceID = nil
        self.brandMessageServiceID = nil
        self.alimTalkServiceID = nil
        self.upstreamTimeout = .seconds(10)
        self.upstreamConnectTimeout = .seconds(3)
        self.maxBodyBytes = 1_048_576
        self.maxResponseBytes = 4_194_304
        self.logLevel = .info
    }

    /// The default service ID configured for a channel (`sms`, `brandmessage`, `alimtalk`).
    public func defaultServiceID(for channel: String) -> String? {
        switch channel {
        case "sms": self.smsServiceID
        case "brandmessage": self.brandMessageServiceID
        case "alimtalk": self.alimTalkServiceID
        default: nil
        }
    }
}

/// A setting that is missing or wrong. Its description is the one line `serve` prints before exiting with 2.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
