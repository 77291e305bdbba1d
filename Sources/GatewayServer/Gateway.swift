// GatewayServer: sensgate's HTTP server — signed passthrough, unified delivery results, health and metrics.

import SENSClient
public import Hummingbird
import DeliveryResults
import HummingbirdCore
public import Logging
import NIOCore
import ServiceLifecycle
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
    /// Where access-log lines go.
    let logSink: @Sendable ([UInt8]) -> Void
    /// Every request's metrics and access-log line: the router's, and the connection's for requests the parser refused.
    var accessLog: AccessLog { AccessLog(logger: self.logger, metrics: self.metrics, sink: self.logSink) }

    /// Creates a gateway; nothing listens until ``makeApplication(onServerRunning:)`` runs.
    /// - Parameters:
    ///   - configuration: Resolved settings.
    ///   - logger: Where server messages go, and whose level decides whether access lines are written.
    ///   - logSink: Where access-log lines go: standard output through the process's ``LogWriter`` unless given.
    /// - Throws: ``ConfigurationError`` when the upstream cannot be set up.
    public init(
        configuration: GatewayConfiguration, logger: Logger, logSink: (@Sendable ([UInt8]) -> Void)? = nil
    ) throws(ConfigurationError) {
        self.configuration = configuration
        self.logger = logger
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
            bodyBudget: self.bodyBudget)
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
            let entry = try await self.results.message(lookup, requestID: RequestIDMiddleware.generate(), record: RequestRecord()).get()
            return .success(entry.body(includeRaw: includeRaw))
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

    /// Builds every route in one place.
    public func buildRouter() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: AccessLogMiddleware(log: self.accessLog))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: RequestTargetMiddleware())
        router.add(middleware: CallerAuthMiddleware(store: self.callers))

        let passthrough = Passthrough(upstream: self.signed, maxBodyBytes: self.configuration.maxBodyBytes, bodyBudget: self.bodyBudget)
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .head, .options]
        for prefix in RequestTarget.passthroughPrefixes {
            for method in methods {
                router.on(RouterPath(prefix + "**"), method: method) { request, context in
                    try await passthrough.respond(to: request, context: context)
                }
            }
        }

        let lookup = self.results
        router.get("/v1/results/{channel}/{messageId}") { request, context in try await lookup.one(request, context: context) }
        router.get("/v1/results/{channel}") { request, context in try await lookup.list(request, context: context) }
        router.post("/v1/results:batch") { request, context in try await lookup.batch(request, context: context) }

        let metrics = self.metrics
        let upstream = self.upstream
        let breaker = self.limits.breaker
        router.get("/healthz") { _, _ in
            Self.json(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ in
            guard upstream.isAccepting else { return Self.json(.serviceUnavailable, #"{"status":"shutting down"}"#) }
            guard !breaker.isRefusing() else {
                return Self.json(.serviceUnavailable, #"{"status":"upstream unreachable","circuit":"open"}"#)
            }
            return Self.json(.ok, #"{"status":"ready"}"#)
        }
        router.get("/metrics") { _, _ in
            metrics.recordCircuitState(breaker.phase.gaugeValue)
            metrics.recordLogLinesDropped(total: LogWriter.standardOutput.droppedLines)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        return router
    }

    /// Creates the HTTP application; its service group also runs the upstream client and stops it last.
    /// - Parameter onServerRunning: Called with the bound port once the server listens.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            responder: self.buildRouter().buildResponder(),
            server: .gatewayHTTP1(
                idleTimeout: .seconds(75),
                limits: ConnectionLimits(clientTimeout: self.configuration.clientTimeout, maxConnections: self.configuration.maxConnections),
                log: self.accessLog),
            configuration: ApplicationConfiguration(
                address: .hostname(self.configuration.listenHost, port: self.configuration.listenPort),
                serverName: nil,
                reuseAddress: true
            ),
            services: [self.upstream, ReloadService(gateway: self)],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: self.logger
        )
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
