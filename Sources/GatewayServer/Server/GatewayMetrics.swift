import SENSClient
import Store
import Metrics
public import Prometheus
import Synchronization

/// The gateway's Prometheus metrics, kept in a registry of its own (no global metrics bootstrap).
///
/// Labels are bounded: route names, methods, status codes, classes, channels, namespaces, error kinds. Never a
/// message id, request id or phone number.
///
/// A class, not a struct: it holds a score of series caches, and every closure and value that keeps the metrics (the
/// passthrough, the tracker, each upstream call's completion) copied all of their references — retains and releases
/// were the first item of a passthrough profile (5% of the process) until it was one reference.
public final class GatewayMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let buckets: [Duration]
    /// Requests being answered now.
    let inFlight: Meter
    // The series the request path touches, looked up once per label set (see ``SeriesCache``).
    private let requests = SeriesCache<RequestLabels, Prometheus.Counter>()
    private let durations = SeriesCache<String, DurationHistogram>()
    private let upstreamCalls = SeriesCache<UpstreamLabels, Prometheus.Counter>()
    private let upstreamDurations = SeriesCache<String, DurationHistogram>()
    private let results = SeriesCache<ResultLabels, Prometheus.Counter>()
    private let cacheLookups = SeriesCache<String, Prometheus.Counter>()
    private let cacheHits: Prometheus.Counter
    private let deliveries = SeriesCache<ResultLabels, Prometheus.Counter>()
    private let deliveryTimes = SeriesCache<String, DurationHistogram>()
    private let webhookDeliveries = SeriesCache<String, Prometheus.Counter>()
    private let idempotency = SeriesCache<String, Prometheus.Counter>()
    /// From acceptance to a final outcome: seconds to days.
    private static let deliveryBuckets: [Duration] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10_800, 86_400, 259_200].map { .seconds($0) }
    /// Log-writer drops already counted, so each scrape adds only the new ones.
    private let logLinesDropped = AtomicCount()

    // Label values as keys: hashing these allocates nothing, unlike an array of them or a status code as text.
    private struct RequestLabels: Hashable, Sendable {
        var route, method: String
        var status: Int
        var resultClass, caller: String
    }

    private struct UpstreamLabels: Hashable, Sendable {
        var route, outcome: String
    }

    private struct ResultLabels: Hashable, Sendable {
        var channel, namespace, code, resultClass: String
    }

    /// Creates an empty set of metrics with sensgate's latency buckets.
    public init(version: String = sensgateVersion) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets: [Duration] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
            .seconds(5), .seconds(10),
        ]
        factory.defaultDurationHistogramBuckets = buckets
        self.buckets = buckets
        self.registry = registry
        self.factory = factory
        self.inFlight = Meter(label: "sensgate_http_requests_in_flight", factory: factory)
        self.cacheHits = registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "sensgate_result_cache_total", unitName: "", helpText: "Single-message lookups: hit, miss or coalesced."),
            labels: [("outcome", "hit")])
        Gauge(label: "sensgate_build_info", dimensions: [("version", version)], factory: factory).record(1)
    }

    /// One answered request.
    func recordRequest(route: String, method: String, status: Int, resultClass: String, caller: String, duration: Duration) {
        self.requests.series(for: RequestLabels(route: route, method: method, status: status, resultClass: resultClass, caller: caller)) {
            self.counter(
                "sensgate_http_requests_total", help: "Requests answered, by route, method, status, class and caller.",
                [("route", route), ("method", method), ("status", String(status)), ("class", resultClass), ("caller", caller)])
        }.increment()
        self.durations.series(for: route) {
            self.histogram("sensgate_http_request_duration_seconds", help: "Time to answer a request, by route.", [("route", route)])
        }.record(duration)
    }

    /// One upstream call: `outcome` is the HTTP status class (`2xx`…) or the transport error kind.
    package func recordUpstream(route: String, outcome: String, duration: Duration) {
        self.upstreamDurations.series(for: route) {
            self.histogram("sensgate_upstream_request_duration_seconds", help: "Time of one call to SENS, by route.", [("route", route)])
        }.record(duration)
        self.upstreamCalls.series(for: UpstreamLabels(route: route, outcome: outcome)) {
            self.counter("sensgate_upstream_requests_total", help: "Calls to SENS, by route and outcome.", [("route", route), ("outcome", outcome)])
        }.increment()
    }

    /// One delivery result served, by channel, code namespace, code and class. Only codes in the table become
    /// label values (a bounded set); any other code is counted as `unknown`.
    func recordResult(channel: String, namespace: String, code: String, resultClass: String) {
        self.resultSeries(channel: channel, namespace: namespace, code: code, resultClass: resultClass).increment()
    }

    /// The series ``recordResult(channel:namespace:code:resultClass:)`` counts in, for a cached result to keep.
    func resultSeries(channel: String, namespace: String, code: String, resultClass: String) -> Prometheus.Counter {
        self.results.series(for: ResultLabels(channel: channel, namespace: namespace, code: code, resultClass: resultClass)) {
            self.counter(
                "sensgate_delivery_results_total", help: "Delivery results served, by channel, code and class.",
                [("channel", channel), ("namespace", namespace), ("code", code), ("class", resultClass)])
        }
    }

    /// A tracked message reached its final outcome (PRODUCT.md §6): the delivery rate of everything sent through the
    /// gateway, and how long SENS took to say so. Labels as ``recordResult(channel:namespace:code:resultClass:)``.
    func recordDelivery(channel: String, namespace: String, code: String, resultClass: String, after elapsed: Duration) {
        self.deliveries.series(for: ResultLabels(channel: channel, namespace: namespace, code: code, resultClass: resultClass)) {
            self.counter(
                "sensgate_deliveries_total", help: "Final outcomes of tracked messages, by channel, code and class.",
                [("channel", channel), ("namespace", namespace), ("code", code), ("class", resultClass)])
        }.increment()
        self.deliveryTimes.series(for: channel) {
            self.registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    metricName: "sensgate_delivery_seconds", unitName: "", helpText: "From a tracked send's acceptance to each message's final outcome."),
                labels: [("channel", channel)], buckets: Self.deliveryBuckets)
        }.record(elapsed)
    }

    /// One webhook delivery attempt: `delivered`, `retried` or `failed` (given up after `webhook-max-age`).
    func recordWebhook(outcome: String) {
        self.webhookDeliveries.series(for: outcome) {
            self.counter("sensgate_webhook_deliveries_total", help: "Webhook delivery attempts, by outcome.", [("outcome", outcome)])
        }.increment()
    }

    /// The store's contents (PRODUCT.md §6): tracked requests by state, and the webhook backlog (pending events).
    func recordStore(_ counts: StoreCounts) {
        self.storeHealth.succeeded()
        for state in [TrackedRequest.State.tracking, .completed, .expired] {
            Gauge(label: "sensgate_tracked_requests", dimensions: [("state", state.rawValue)], factory: self.factory).record(counts.requests[state] ?? 0)
        }
        Gauge(label: "sensgate_webhook_backlog", factory: self.factory).record(counts.events[.pending] ?? 0)
        Gauge(label: "sensgate_webhook_failed_events", factory: self.factory).record(counts.events[.failed] ?? 0)
        Gauge(label: "sensgate_idempotency_keys", factory: self.factory).record(counts.keys)
    }

    /// Whether the store works, as last seen (``StoreHealth``), for `/readyz`.
    let storeHealth = StoreHealth()

    /// A store operation that failed (`track`, `poll`, `claim`, `attempt`, `read`).
    func recordStoreError(operation: String) {
        self.storeHealth.failed()
        Counter(label: "sensgate_store_errors_total", dimensions: [("operation", operation)], factory: self.factory).increment()
    }

    /// A keyed send (PRODUCT.md §7), by what its key said: `claimed`, `replayed`, `in_progress`, `mismatch`,
    /// `outcome_unknown`.
    func recordIdempotency(outcome: String) {
        self.idempotency.series(for: outcome) {
            self.counter("sensgate_idempotency_total", help: "Sends with an Idempotency-Key, by what the key said.", [("outcome", outcome)])
        }.increment()
    }

    /// One error answer, by its contract code.
    func recordError(code: String) {
        Counter(label: "sensgate_errors_total", dimensions: [("code", code)], factory: self.factory).increment()
    }

    /// One retry of an upstream call, by why the previous attempt failed.
    package func recordRetry(route: String, reason: String) {
        Counter(label: "sensgate_upstream_retries_total", dimensions: [("route", route), ("reason", reason)], factory: self.factory).increment()
    }

    /// An upstream call the gateway's own limits refused (`rate`, `in_flight`, `circuit_open`).
    package func recordRefusal(reason: String) {
        Counter(label: "sensgate_upstream_refused_total", dimensions: [("reason", reason)], factory: self.factory).increment()
    }

    /// One single-message lookup: served from the cache (`hit`), shared with an identical one in flight
    /// (`coalesced`), or sent to SENS (`miss`).
    func recordCache(outcome: String) {
        // A hit, the hot case, is counted without a lookup.
        if outcome == "hit" { return self.cacheHits.increment() }
        self.cacheLookups.series(for: outcome) {
            self.counter("sensgate_result_cache_total", help: "Single-message lookups: hit, miss or coalesced.", [("outcome", outcome)])
        }.increment()
    }

    /// The replicas sharing the SENS budget, as this one last heard (`upstream-rate` ÷ this is its share).
    func recordFleetReplicas(_ value: Int) {
        Gauge(label: "sensgate_fleet_replicas", factory: self.factory).record(value)
    }

    /// Where the circuit breaker is (0 closed, 1 open, 2 probing), set when metrics are scraped.
    func recordCircuitState(_ value: Int) {
        Gauge(label: "sensgate_upstream_circuit_state", factory: self.factory).record(value)
    }

    /// Log lines the log writer dropped so far (its buffer full, or its descriptor failed), set when metrics are scraped.
    func recordLogLinesDropped(total: Int) {
        let reported = self.logLinesDropped.value.exchange(total, ordering: .relaxed)
        let counter = Counter(label: "sensgate_log_lines_dropped_total", factory: self.factory)
        if total > reported { counter.increment(by: total - reported) }
    }

    /// The circuit breaker opened.
    package func recordBreakerOpened() {
        Counter(label: "sensgate_circuit_breaker_opened_total", factory: self.factory).increment()
    }

    private func counter(_ name: String, help: String, _ labels: [(String, String)]) -> Prometheus.Counter {
        self.registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }

    private func histogram(_ name: String, help: String, _ labels: [(String, String)]) -> DurationHistogram {
        self.registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels, buckets: self.buckets)
    }

    /// The Prometheus text exposition of every series.
    public func render() -> [UInt8] {
        self.registry.emitToBuffer()
    }
}

/// Metric series already made, by label values.
///
/// Making a series through swift-metrics or the registry allocates the label list and looks it up under the
/// registry's lock on every call; the request path instead finds its series here with one small lookup. Label values
/// are bounded (see ``GatewayMetrics``), so the cache is too.
final class SeriesCache<Key: Hashable & Sendable, Series: AnyObject & Sendable>: Sendable {
    private let made = Mutex<[Key: Series]>([:])

    func series(for key: Key, make: () -> Series) -> Series {
        if let series = self.made.withLock({ $0[key] }) { return series }
        // The registry hands out one series per name and label set, so a race here makes the same series twice.
        let series = make()
        self.made.withLock { $0[key] = series }
        return series
    }
}

/// sensgate's version, reported by `--version` and the `sensgate_build_info` metric.
public let sensgateVersion = "0.1.0"
