// GatewayServer: sensgate's HTTP server — signed passthrough, unified delivery results, health and metrics.

import SENSClient
import DeliveryResults
public import Store
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Signing
public import UpstreamClient

/// A configured gateway: its upstream client, credentials, metrics and the HTTP application that serves them.
public struct Gateway: Sendable {
    /// The settings the gateway runs with.
    public let configuration: GatewayConfiguration
    /// The one upstream client (one curl multi handle) every request goes through.
    public let upstream: UpstreamClient
    /// The gateway's metrics registry.
    public let metrics: GatewayMetrics
    let credentials: CredentialStore
    let callers: CallerStore
    let limits: UpstreamGuard
    let signed: SignedUpstream
    let results: DeliveryLookup
    /// The request-body bytes all connections may hold at once.
    let bodyBudget: BodyBudget
    let logger: Logger
    /// Where tracked sends are recorded; `nil` when no store was opened (a tracked send then answers
    /// `X-Sensgate-Tracking: failed`).
    let store: (any DeliveryStore)?
    /// Wakes `?wait=` readers when the tracker closes a request.
    let completions = Completions()
    /// Where access-log lines go.
    let logSink: @Sendable ([UInt8]) -> Void
    /// Every request's metrics and access-log line.
    var accessLog: AccessLog { AccessLog(logger: self.logger, metrics: self.metrics, sink: self.logSink) }

    /// Creates a gateway; nothing listens until ``makeApplication(onServerRunning:)`` runs.
    /// - Parameters:
    ///   - configuration: Resolved settings.
    ///   - logger: Where server messages go, and whose level decides whether access lines are written.
    ///   - logSink: Where access-log lines go: standard output through the process's ``LogWriter`` unless given.
    ///   - store: Where tracked sends are recorded (the caller opens it and closes it after the gateway stops).
    /// - Throws: ``ConfigurationError`` when the upstream cannot be set up.
    public init(
        configuration: GatewayConfiguration, logger: Logger, logSink: (@Sendable ([UInt8]) -> Void)? = nil,
        store: (any DeliveryStore)? = nil
    ) throws(ConfigurationError) {
        self.configuration = configuration
        self.logger = logger
        self.store = store
        self.logSink = logSink ?? LogWriter.standardOutput.write
        // Before libcurl initializes OpenSSL (in the upstream client): no error strings to keep resident.
        Libcrypto.skipErrorStrings()
        do {
            self.upstream = try UpstreamClient(
                configuration: UpstreamConfiguration(
                    baseURL: configuration.upstream,
                    connectTimeout: configuration.upstreamConnectTimeout,
                    requestTimeout: configuration.upstreamTimeout,
                    maxResponseBytes: configuration.maxResponseBytes,
                    maxBufferedResponseBytes: configuration.maxBufferedResponseBytes,
                    caFile: configuration.upstreamCAFile
                ),
                logger: logger
            )
        } catch {
            throw ConfigurationError("upstream \"\(configuration.upstream)\" is not valid: \(error.detail)")
        }
        self.metrics = GatewayMetrics()
        self.bodyBudget = BodyBudget(capacity: configuration.maxBufferedBodyBytes)
        self.credentials = CredentialStore(Signer(accessKey: configuration.accessKey, secretKey: configuration.secretKey))
        self.callers = CallerStore(configuration.callerTokens)
        self.limits = UpstreamGuard(
            rate: configuration.upstreamRate, burst: configuration.upstreamBurst, maxInFlight: configuration.upstreamMaxInFlight,
            breakerThreshold: configuration.breakerThreshold, breakerCooldown: configuration.breakerCooldown,
            probeDeadline: configuration.upstreamTimeout + .seconds(1))
        self.signed = SignedUpstream(
            client: self.upstream, credentials: self.credentials, metrics: self.metrics, policy: configuration.retryPolicy,
            limits: self.limits, timeout: configuration.upstreamTimeout)
        self.results = DeliveryLookup(
            upstream: self.signed, configuration: configuration, normalizer: Normalizer(), metrics: self.metrics,
            cache: ResultCache(capacity: configuration.cacheSize, maxBytes: configuration.cacheBytes, ttl: configuration.cacheTTL),
            waits: self.completions,
    )
    }

    /// Looks one message's delivery result up in SENS, exactly as `GET /v1/results/{channel}/{messageId}` does, without
    /// serving HTTP (for `sensgate lookup`).
    /// - Returns: The unified JSON (with SENS's own under `raw` when asked), or the error envelope.
    public func lookup(channel: String, messageId: String, serviceId: String?, includeRaw: Bool) async -> Result<[UInt8], GatewayError> {
        do throws(GatewayError) {
            let channel = try DeliveryLookup.channel(channel)
            let lookup = DeliveryLookup.Lookup(
                channel: channel, key: .message(try DeliveryLookup.identifier(messageId, name: "messageId")),
                serviceId: try self.results.serviceId(given: serviceId, channel: channel))
            let entry = try await self.results.message(lookup, requestID: RequestID.generate(), record: RequestRecord(), on: MultiThreadedEventLoopGroup.singleton.any()).get()
            return .success(Array(entry.body(includeRaw: includeRaw).readableBytesView))
        } catch {
            return .failure(error)
        }
    }

    /// Re-reads the secret key file and the caller tokens file, where configured: key rotation and caller changes
    /// without a restart. A file that cannot be read or parsed leaves what is in force unchanged.
    /// - Parameters:
    ///   - secretKey: Whether to re-read the secret key (on `SIGHUP`; not when only the tokens file changed).
    ///   - readFile: Reads a file's text (tests inject failures).
    /// - Throws: ``ConfigurationError`` for the first file that could not be used (the other is still reloaded).
    public func reload(secretKey: Bool = true, readFile: ((String) throws -> String)? = nil) throws(ConfigurationError) {
        let readFile = readFile ?? ConfigurationLoader.readTextFile
        var firstError: ConfigurationError? = nil
        if secretKey, let path = self.configuration.secretKeyFile {
            do throws(ConfigurationError) {
                let key = try ConfigurationLoader.readSecretKey(path: path, readFile: readFile)
                self.credentials.replace(with: Signer(accessKey: self.configuration.accessKey, secretKey: key))
                self.logger.notice("secret key reloaded", metadata: ["file": "\(path)"])
            } catch {
                firstError = ConfigurationError(error.message + "; the old key stays in use")
            }
        }
        if let path = self.configuration.callerTokensFile {
            do throws(ConfigurationError) {
                let tokens = try ConfigurationLoader.readCallerTokens(path: path, readFile: readFile)
                self.callers.replace(with: tokens)
                self.logger.notice("caller tokens reloaded", metadata: ["file": "\(path)", "callers": "\(tokens.callers.count)"])
            } catch {
                firstError = firstError ?? ConfigurationError(error.message + "; the old tokens stay in use")
            }
        }
        if let firstError {
            self.logger.error("reload failed", metadata: ["reason": "\(firstError.message)"])
            throw firstError
        }
    }

    /// Every route, built in one place.
    func buildRoutes() -> Routes {
        Routes(
            log: self.accessLog, bodyBudget: self.bodyBudget, callers: self.callers,
            passthrough: Passthrough(
                upstream: self.signed, maxBodyBytes: self.configuration.maxBodyBytes,
                tracking: Tracking(
                    store: self.store, trackByDefault: self.configuration.track, schedule: self.configuration.trackSchedule,
                    metrics: self.metrics, logger: self.logger),
                idempotency: Idempotency(
                    store: self.store, ttl: TrackSchedule.milliseconds(self.configuration.idempotencyTTL),
                    // Longer than a send can take: its whole upstream deadline, then the commit's.
                    lease: TrackSchedule.milliseconds(self.configuration.upstreamTimeout + self.configuration.trackCommitDeadline + .seconds(10)),
                    metrics: self.metrics),
                commitDeadline: self.configuration.trackCommitDeadline, logger: self.logger),
            results: self.results, requests: TrackedRequests(store: self.store, completions: self.completions),
            events: DeliveryEvents(store: self.store), upstream: self.upstream, breaker: self.limits.breaker)
    }

    /// The gateway as a service: the HTTP server, the upstream client and the reloader. On graceful shutdown the
    /// server stops first (in-flight requests finish), then the upstream client (its queue drains).
    /// - Parameter onServerRunning: Called with the bound port once the server listens.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some Service {
        // Stopped in reverse order: the server, then the tracker (its polls finish), then the upstream client.
        var background: [any Service] = []
        let webhooks = WebhookDirectory(callers: self.callers, global: self.configuration.webhook)
        if let store = self.store {
            let trackBudget = TokenBucket(rate: self.configuration.trackRate, burst: max(1, Int(self.configuration.trackRate.rounded(.up))))
            // First of the store's services, so stopped last: the share holds while the tracker's last polls finish.
            background.append(
                FleetBudget(store: store, buckets: [trackBudget] + (self.limits.bucket.map { [$0] } ?? []), metrics: self.metrics, logger: self.logger))
            var tracker = Tracker(
                store: store, results: self.results, schedule: self.configuration.trackSchedule,
                budget: trackBudget,
                metrics: self.metrics, logger: self.logger, completions: self.completions, webhooks: webhooks)
            // Three upstream timeouts: a poll takes no more budget once a third of its lease is left, so its last call
            // (bounded by the upstream timeout) ends while the claim holds; a replica that dies has its claims taken
            // over within half a minute (by default), never while its poll may still be running.
            tracker.lease = max(15_000, 3 * TrackSchedule.milliseconds(self.configuration.upstreamTimeout))
            background.append(tracker)
            background.append(StoreGauges(store: store, metrics: self.metrics, logger: self.logger))
            background.append(KeySweeper(store: store, metrics: self.metrics, logger: self.logger))
            background.append(
                WebhookSender(
                    store: store, webhooks: webhooks, schedule: self.configuration.webhookSchedule,
                    metrics: self.metrics, logger: self.logger))
        }
        return GatewayService(
            services: [self.upstream, ReloadService(gateway: self)] + background + [
                HTTPServer(
                    host: self.configuration.listenHost, port: self.configuration.listenPort, routes: self.buildRoutes(),
                    limits: ConnectionLimits(clientTimeout: self.configuration.clientTimeout, maxConnections: self.configuration.maxConnections),
                    logger: self.logger, onRunning: onServerRunning, onShutdown: { [completions] in completions.stopWaiting() })
            ],
            logger: self.logger)
    }
}

/// Runs the gateway's services as one; they stop in reverse order.
struct GatewayService: Service {
    let services: [any Service]
    let logger: Logger

    func run() async throws {
        try await ServiceGroup(configuration: .init(services: self.services, logger: self.logger)).run()
    }
}
