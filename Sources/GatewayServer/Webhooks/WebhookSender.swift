import Logging
import NIOCore
import ServiceLifecycle
import Signing
import Store
import Synchronization
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// Delivers the outbox (PRODUCT.md §6): each pending event is `POST`ed to its caller's webhook with Standard Webhooks
/// headers — the same `webhook-id` on every attempt, a fresh `webhook-timestamp` and signature — until a `2xx`
/// answers within 10 s; otherwise it is tried again on ``WebhookSchedule`` until `webhook-max-age`, then `failed`.
/// At least once: an attempt is recorded after it is made, so a process killed between the two makes it again.
///
/// Webhooks go through libcurl clients of their own, one per receiver origin (the SENS client's origin is fixed),
/// never following a redirect. Started with the server, stopped before it is; deliveries in flight finish.
final class WebhookSender: Service, Sendable {
    let store: any DeliveryStore
    /// Where each caller's events go.
    let webhooks: WebhookDirectory
    let schedule: WebhookSchedule
    let metrics: GatewayMetrics
    let logger: Logger
    /// Events delivered at once.
    let concurrency = 8
    /// A claim outlives the longest attempt (10 s) three times: a replica that dies has its deliveries taken over
    /// within half a minute.
    let lease: StoreTime = 30_000
    /// The time an attempt may take, connection included.
    static let timeout: Duration = .seconds(10)
    private let clients = Mutex<[String: UpstreamClient]>([:])

    init(store: any DeliveryStore, webhooks: WebhookDirectory, schedule: WebhookSchedule, metrics: GatewayMetrics, logger: Logger) {
        self.store = store
        self.webhooks = webhooks
        self.schedule = schedule
        self.metrics = metrics
        self.logger = logger
    }

    /// How long to sleep when nothing is due.
    var idleWait: Duration { min(.milliseconds(500), self.schedule.first / 4) }

    func run() async throws {
        await DueWork.run(
            what: "due webhook events", concurrency: self.concurrency, idleWait: self.idleWait, metrics: self.metrics, logger: self.logger,
            claim: { () async throws(StoreError) in
                try await self.store.claimDueEvents(now: .now, limit: self.concurrency, lease: self.lease)
            },
            work: { await self.deliver($0) })
        let clients = self.clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in clients { await client.shutdown() }
    }

    /// One attempt at one claimed event, then its record.
    func deliver(_ event: StoredEvent) async {
        guard let target = self.webhooks.target(for: event.caller) else {
            if self.store.isShared {
                // Another replica of the fleet may know the webhook (a rolling deploy that adds or changes it; an
                // outside test saw one replica without it fail the whole fleet's events): left, unattempted, for the
                // claim to lapse and a replica that knows it to deliver. Events no replica can deliver show as the
                // webhook backlog.
                self.logger.warning(
                    "a webhook event is left to another replica: this one has no webhook for its caller",
                    metadata: ["eventId": "\(event.id)", "caller": "\(event.caller)"])
                return
            }
            // Its caller's webhook was removed since the event was made: failed at once, listed by
            // GET /v1/events?state=failed, redeliverable once one is configured again.
            await self.record(event, delivered: false, retryAt: nil, reason: "no webhook is configured for caller \(event.caller)")
            return
        }
        let outcome: String
        do {
            let client = try self.client(for: target.origin)
            let timestamp = StoreTime.now / 1000
            let body = Array(event.body.utf8)
            let response = try await client.execute(
                UpstreamRequest(
                    method: "POST", target: target.target,
                    headers: [
                        ("content-type", "application/json"), ("user-agent", "sensgate/\(sensgateVersion)"), ("webhook-id", event.id),
                        ("webhook-timestamp", String(timestamp)),
                        ("webhook-signature", target.secret.signature(id: event.id, timestamp: timestamp, body: body)),
                    ],
                    body: .init(bytes: body), timeout: Self.timeout))
            if (200..<300).contains(response.status) {
                await self.record(event, delivered: true, retryAt: nil, reason: nil)
                return
            }
            outcome = "the receiver answered \(response.status)"
        } catch {
            // Not an attempt the receiver failed: the process is stopping. The claim lapses; the next start sends it.
            if error.kind == .cancelled || error.kind == .shuttingDown { return }
            outcome = "\(error.kind.rawValue): \(error.detail)"
        }
        let retryAt = self.schedule.retryAt(
            after: event.attempts + 1, createdAt: event.createdAt, now: .now, jitter: Double.random(in: 0...1))
        await self.record(event, delivered: false, retryAt: retryAt, reason: "\(target): \(outcome)")
    }

    /// Writes what an attempt did (store writes finish whatever the task's cancellation: a stopping sender still
    /// records its last attempts).
    private func record(_ event: StoredEvent, delivered: Bool, retryAt: StoreTime?, reason: String?) async {
        do {
            guard try await self.store.recordAttempt(event, delivered: delivered, retryAt: retryAt) else { return }
        } catch {
            self.metrics.recordStoreError(operation: "attempt")
            self.logger.warning("a webhook attempt was not recorded", metadata: ["eventId": "\(event.id)", "reason": "\(error)"])
            return
        }
        let outcome = delivered ? "delivered" : (retryAt == nil ? "failed" : "retried")
        self.metrics.recordWebhook(outcome: outcome)
        guard let reason else { return }
        let metadata: Logger.Metadata = ["eventId": "\(event.id)", "attempts": "\(event.attempts + 1)", "reason": "\(reason)"]
        if retryAt == nil {
            self.logger.error("a webhook event failed: it will not be retried (see GET /v1/events?state=failed)", metadata: metadata)
        } else {
            self.logger.notice("a webhook attempt failed; it will be retried", metadata: metadata)
        }
    }

    private func client(for origin: String) throws(UpstreamError) -> UpstreamClient {
        if let client = self.clients.withLock({ $0[origin] }) { return client }
        let made = try UpstreamClient(
            configuration: UpstreamConfiguration(
                baseURL: origin, connectTimeout: .seconds(5), requestTimeout: Self.timeout, maxResponseBytes: 64 << 10,
                maxBufferedResponseBytes: 1 << 20, maxIdleConnections: 16),
            logger: self.logger)
        let (client, spare) = self.clients.withLock { clients -> (UpstreamClient, UpstreamClient?) in
            if let existing = clients[origin] { return (existing, made) }
            clients[origin] = made
            return (made, nil)
        }
        if let spare { Task { await spare.shutdown() } }
        return client
    }
}
