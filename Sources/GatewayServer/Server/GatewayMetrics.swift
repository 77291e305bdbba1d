import Metrics
public import Prometheus

/// The gateway's Prometheus metrics, kept in a registry of its own (no global metrics bootstrap).
///
/// Labels are bounded: route names, methods, status codes, classes, channels, namespaces, error kinds. Never a
/// message id, request id or phone number.
public struct GatewayMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Requests being answered now.
    let inFlight: Meter

    /// Creates an empty set of metrics with sensgate's latency buckets.
    public init(version: String = sensgateVersion) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
            .seconds(5), .seconds(10),
        ]
        self.registry = registry
        self.factory = factory
        self.inFlight = Meter(label: "sensgate_http_requests_in_flight", factory: factory)
        Gauge(label: "sensgate_build_info", dimensions: [("version", version)], factory: factory).record(1)
    }

    /// One answered request.
    func recordRequest(route: String, method: String, status: Int, resultClass: String, caller: String, duration: Duration) {
        Counter(
            label: "sensgate_http_requests_total",
            dimensions: [("route", route), ("method", method), ("status", String(status)), ("class", resultClass), ("caller", caller)],
            factory: self.factory
        ).increment()
        Timer(label: "sensgate_http_request_duration_seconds", dimensions: [("route", route)], factory: self.factory)
            .recordNanoseconds(duration.nanoseconds)
    }

    /// One upstream call: `outcome` is the HTTP status class (`2xx`…) or the transport error kind.
    func recordUpstream(route: String, outcome: String, duration: Duration) {
        Timer(label: "sensgate_upstream_request_duration_seconds", dimensions: [("route", route)], factory: self.factory)
            .recordNanoseconds(duration.nanoseconds)
        Counter(label: "sensgate_upstream_requests_total", dimensions: [("route", route), ("outcome", outcome)], factory: self.factory)
            .increment()
    }

    /// One delivery result served, by channel, code namespace, code and class. Only codes in the table become
    /// label values (a bounded set); any other code is counted as `unknown`.
    func recordResult(channel: String, namespace: String, code: String, resultClass: String) {
        Counter(
            label: "sensgate_delivery_results_total",
            dimensions: [("channel", channel), ("namespace", namespace), ("code", code), ("class", resultClass)],
            factory: self.factory
        ).increment()
    }

    /// One error answer, by its contract code.
    func recordError(code: String) {
        Counter(label: "sensgate_errors_total", dimensions: [("code", code)], factory: self.factory).increment()
    }

    /// One retry of an upstream call, by why the previous attempt failed.
    func recordRetry(route: String, reason: String) {
        Counter(label: "sensgate_upstream_retries_total", dimensions: [("route", route), ("reason", reason)], factory: self.factory).increment()
    }

    /// An upstream call the gateway's own limits refused (`rate`, `in_flight`, `circuit_open`).
    func recordRefusal(reason: String) {
        Counter(label: "sensgate_upstream_refused_total", dimensions: [("reason", reason)], factory: self.factory).increment()
    }

    /// One single-message lookup: served from the cache (`hit`), shared with an identical one in flight
    /// (`coalesced`), or sent to SENS (`miss`).
    func recordCache(outcome: String) {
        Counter(label: "sensgate_result_cache_total", dimensions: [("outcome", outcome)], factory: self.factory).increment()
    }

    /// The circuit breaker opened.
    func recordBreakerOpened() {
        Counter(label: "sensgate_circuit_breaker_opened_total", factory: self.factory).increment()
    }

    /// The Prometheus text exposition of every series.
    public func render() -> [UInt8] {
        self.registry.emitToBuffer()
    }
}

/// sensgate's version, reported by `--version` and the `sensgate_build_info` metric.
public let sensgateVersion = "0.1.0"
