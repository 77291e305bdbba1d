public import Store
public import SENSClient
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
/// - `upstream-ca-file` / `SENSGATE_UPSTREAM_CA_FILE`: PEM certificate authorities to trust for an `https` upstream
///   instead of the system's (a private CA, or an egress proxy that re-signs TLS); default: the system's.
/// - `max-body-bytes` / `SENSGATE_MAX_BODY_BYTES`: largest request body accepted, default 1048576.
/// - `max-buffered-body-bytes`, `max-buffered-response-bytes` / `SENSGATE_MAX_BUFFERED_BODY_BYTES`,
///   `SENSGATE_MAX_BUFFERED_RESPONSE_BYTES`: request and SENS response bytes held at once, default 64 MiB each.
/// - `cache-bytes` / `SENSGATE_CACHE_BYTES`: most bytes the result cache holds, default 32 MiB.
/// - `store` / `SENSGATE_STORE`: `embedded` (the default: SQLite in `data-dir`) or `postgres://user@host:port/db`
///   (`?sslmode=require` or `verify-full` for TLS), shared by a fleet of replicas.
/// - `store-password-file` / `SENSGATE_STORE_PASSWORD_FILE`: the PostgreSQL password, else `PGPASSWORD`.
/// - `store-pool-size` / `SENSGATE_STORE_POOL_SIZE`: PostgreSQL connections per replica, default 10.
/// - `data-dir` / `SENSGATE_DATA_DIR`: where the embedded store keeps its file, default `./sensgate-data`.
/// - `track` / `SENSGATE_TRACK`: follow every send to its final result when no caller tokens say otherwise, default false.
/// - `track-rate` / `SENSGATE_TRACK_RATE`: the tracker's calls per second to SENS, default 20.
/// - `track-max-age` / `SENSGATE_TRACK_MAX_AGE`: seconds a tracked request is followed before it expires, default 259200.
/// - `webhook-url`, `webhook-secret-file` / `SENSGATE_WEBHOOK_URL`, `SENSGATE_WEBHOOK_SECRET_FILE`: where events go
///   without a caller's own webhook; `webhook-max-age` / `SENSGATE_WEBHOOK_MAX_AGE`: seconds an event is retried, 86400.
/// - `idempotency-ttl` / `SENSGATE_IDEMPOTENCY_TTL`: seconds an `Idempotency-Key` and its answer are kept, default 86400.
/// - `max-response-bytes` / `SENSGATE_MAX_RESPONSE_BYTES`: largest upstream body accepted, default 4194304.
/// - `log-level` / `SENSGATE_LOG_LEVEL`: `trace` … `critical`, default `info`.
/// - `upstream-retries` / `SENSGATE_UPSTREAM_RETRIES`: extra attempts for retryable failures, default 2.
/// - `upstream-retry-backoff` / `SENSGATE_UPSTREAM_RETRY_BACKOFF`: first backoff ceiling in seconds, default 0.1.
/// - `upstream-rate`, `upstream-burst` / `SENSGATE_UPSTREAM_RATE`, `SENSGATE_UPSTREAM_BURST`: token bucket on
///   upstream calls per second (0: no limit, the default) and its burst (default: the rate); with a PostgreSQL store,
///   the whole fleet's, divided among the live replicas.
/// - `upstream-max-in-flight` / `SENSGATE_UPSTREAM_MAX_IN_FLIGHT`: upstream calls at once, default 1024.
/// - `breaker-threshold`, `breaker-cooldown` / `SENSGATE_BREAKER_THRESHOLD`, `SENSGATE_BREAKER_COOLDOWN`:
///   consecutive connect failures that open the circuit (0: off; default 5) and seconds it stays open (default 5).
/// - `caller-tokens-file` / `SENSGATE_CALLER_TOKENS_FILE`: callers and their tokens; none means no caller auth.
/// - `client-timeout` / `SENSGATE_CLIENT_TIMEOUT`: seconds a client has to send a request's head, and its body.
/// - `max-connections` / `SENSGATE_MAX_CONNECTIONS`: client connections at once, default 10000.
/// - `cache-size`, `cache-ttl` / `SENSGATE_CACHE_SIZE`, `SENSGATE_CACHE_TTL`: completed results kept (default 10000)
///   and for how many seconds (default 300; 0 turns the cache off).
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
    /// PEM certificate authorities trusted for an `https` upstream instead of the system's; `nil`: the system's.
    public var upstreamCAFile: String?
    public var maxBodyBytes: Int
    /// Request body bytes buffered at once across every connection; a body that does not fit is `503 overloaded`.
    public var maxBufferedBodyBytes: Int
    /// SENS response bytes buffered at once across every call in flight.
    public var maxBufferedResponseBytes: Int
    public var maxResponseBytes: Int
    public var logLevel: Logger.Level
    public var retryPolicy: RetryPolicy
    /// Upstream calls per second allowed by the token bucket; 0 for no limit.
    public var upstreamRate: Double
    public var upstreamBurst: Int
    public var upstreamMaxInFlight: Int
    public var breakerThreshold: Int
    public var breakerCooldown: Duration
    /// Where caller tokens are read from (re-read when it changes and on SIGHUP).
    public var callerTokensFile: String?
    /// The callers allowed in; `nil` lets every caller in.
    public var callerTokens: CallerTokens?
    public var clientTimeout: Duration
    public var maxConnections: Int
    public var cacheSize: Int
    /// Bytes the result cache holds at most (its JSON and SENS's bodies), whatever the entry count.
    public var cacheBytes: Int
    /// Where the embedded store keeps its file (created if missing).
    public var dataDir: String
    /// The backend: the embedded file in ``dataDir``, or a PostgreSQL database shared by a fleet.
    public var store: StoreLocation
    /// The file holding the PostgreSQL password (read when the store opens, never kept here); else `PGPASSWORD`.
    public var storePasswordFile: String?
    /// The most PostgreSQL connections this replica opens.
    public var storePoolSize: Int
    /// Whether sends are tracked without being asked (without caller tokens; a caller's `track` decides with them).
    public var track: Bool
    /// How long SENS's accepted answer to a tracked send waits for its record (past it: `X-Sensgate-Tracking: failed`,
    /// and the commit still lands). Not a setting: tests on a loaded machine give it room.
    public var trackCommitDeadline: Duration
    /// How long a completed result is served from the cache; zero turns the cache off.
    public var cacheTTL: Duration
    /// The tracker's share of the SENS budget, in calls per second (`track-rate`).
    public var trackRate: Double
    /// When tracked requests are polled and given up (`track-max-age` is its `maxAge`; the rest is the spec's
    /// schedule, shortened only by tests).
    public var trackSchedule: TrackSchedule
    /// Where events go when the caller's entry names no webhook, or without caller tokens (`webhook-url`,
    /// `webhook-secret-file`).
    public var webhook: WebhookTarget?
    /// When undelivered events are retried and given up (`webhook-max-age` is its `maxAge`).
    public var webhookSchedule: WebhookSchedule
    /// How long an `Idempotency-Key` and its answer are kept (`idempotency-ttl`).
    public var idempotencyTTL: Duration

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
        self.maxBufferedBodyBytes = 64 << 20
        self.maxBufferedResponseBytes = 64 << 20
        self.maxResponseBytes = 4_194_304
        self.logLevel = .info
        self.retryPolicy = RetryPolicy()
        self.upstreamRate = 0
        self.upstreamBurst = 1
        self.upstreamMaxInFlight = 1024
        self.breakerThreshold = 5
        self.breakerCooldown = .seconds(5)
        self.callerTokensFile = nil
        self.callerTokens = nil
        self.clientTimeout = .seconds(10)
        self.maxConnections = 10_000
        self.cacheSize = 10_000
        self.cacheBytes = 32 << 20
        self.dataDir = "./sensgate-data"
        self.store = .embedded
        self.storePasswordFile = nil
        self.storePoolSize = 10
        self.track = false
        self.trackCommitDeadline = .seconds(1)
        self.cacheTTL = .seconds(300)
        self.trackRate = 20
        self.trackSchedule = TrackSchedule()
        self.webhook = nil
        self.webhookSchedule = WebhookSchedule()
        self.idempotencyTTL = .seconds(86_400)
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
