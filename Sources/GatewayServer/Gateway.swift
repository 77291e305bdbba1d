// GatewayServer: sensgate's HTTP server — signed passthrough, unified delivery results, health and metrics.

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
    let logger: Logger

    /// Creates a gateway; nothing listens until ``makeApplication(onServerRunning:)`` runs.
    /// - Parameters:
    ///   - configuration: Resolved settings.
    ///   - logger: Where access logs and server messages go.
    /// - Throws: ``ConfigurationError`` when the upstream cannot be set up.
    public init(configuration: GatewayConfiguration, logger: Logger) throws(ConfigurationError) {
        self.configuration = configuration
        self.logger = logger
        do {
            self.upstream = try UpstreamClient(
                configuration: UpstreamConfiguration(
                    baseURL: configuration.upstream,
                    connectTimeout: configuration.upstreamConnectTimeout,
                    requestTimeout: configuration.upstreamTimeout,
                    maxResponseBytes: configuration.maxResponseBytes
                ),
                logger: logger
            )
        } catch {
            throw ConfigurationError("upstream \"\(configuration.upstream)\" is not valid: \(error.detail)")
        }
        self.metrics = GatewayMetrics()
        self.credentials = CredentialStore(Signer(accessKey: configuration.accessKey, secretKey: configuration.secretKey))
    }

    /// Builds every route in one place.
    public func buildRouter() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: AccessLogMiddleware(logger: self.logger, metrics: self.metrics))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: RequestTargetMiddleware())

        let signed = SignedUpstream(client: self.upstream, credentials: self.credentials, metrics: self.metrics)
        let passthrough = Passthrough(upstream: signed, maxBodyBytes: self.configuration.maxBodyBytes)
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .head, .options]
        for prefix in RequestTarget.passthroughPrefixes {
            for method in methods {
                router.on(RouterPath(prefix + "**"), method: method) { request, context in
                    try await passthrough.respond(to: request, context: context)
                }
            }
        }

        let lookup = DeliveryLookup(upstream: signed, configuration: self.configuration, normalizer: Normalizer(), metrics: self.metrics)
        router.get("/v1/results/{channel}/{messageId}") { request, context in try await lookup.one(request, context: context) }
        router.get("/v1/results/{channel}") { request, context in try await lookup.list(request, context: context) }
        router.post("/v1/results:batch") { request, context in try await lookup.batch(request, context: context) }

        let metrics = self.metrics
        let upstream = self.upstream
        router.get("/healthz") { _, _ in
            Self.json(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ in
            upstream.isAccepting
                ? Self.json(.ok, #"{"status":"ready"}"#)
                : Self.json(.serviceUnavailable, #"{"status":"shutting down"}"#)
        }
        router.get("/metrics") { _, _ in
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
            server: .gatewayHTTP1(idleTimeout: .seconds(75)),
            configuration: ApplicationConfiguration(
                address: .hostname(self.configuration.listenHost, port: self.configuration.listenPort),
                serverName: nil,
                reuseAddress: true
            ),
            services: [self.upstream],
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
