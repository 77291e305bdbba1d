import SENSClient
import Logging

/// The end of every request: its metrics and its access-log line.
struct AccessLog: Sendable {
    let logger: Logger
    let metrics: GatewayMetrics
    /// Where the line goes (the process's ``LogWriter``, or a test's capture).
    let sink: @Sendable ([UInt8]) -> Void
    /// `level`, `logger` and `msg` of every access-log line, serialized once.
    private let head: JSONLogLine.Head

    init(logger: Logger, metrics: GatewayMetrics, sink: @escaping @Sendable ([UInt8]) -> Void) {
        self.logger = logger
        self.metrics = metrics
        self.sink = sink
        self.head = JSONLogLine.Head(level: .info, label: logger.label, message: "request")
    }

    func finish(method: String, target: String, status: Int, bytesOut: Int, elapsed: Duration, record: RequestRecord) {
        let resultClass = record.resultClass ?? "none"
        let caller = record.caller?.name ?? "anonymous"
        if let code = record.errorCode { self.metrics.recordError(code: code) }
        self.metrics.recordRequest(
            route: record.route, method: method, status: status, resultClass: resultClass, caller: caller, duration: elapsed)
        guard self.logger.logLevel <= .info else { return }
        // Built directly, fields in key order, as ``JSONLogHandler`` would write the same event.
        var line = JSONLogLine(head: self.head)
        line.field("bytesIn", int: record.bytesIn)
        line.field("bytesOut", int: bytesOut)
        line.field("caller", caller)
        line.field("class", record.resultClass)
        line.field("error", record.errorCode)
        line.field("idempotency", record.idempotency)
        line.field("latencyMs", number: elapsed.secondsValue * 1000)
        line.field("method", method)
        line.field("path", PhoneMasking.mask(target))
        line.field("requestId", record.requestIDFromCaller ? PhoneMasking.mask(record.requestID) : record.requestID)
        line.field("route", record.route)
        line.field("status", int: status)
        line.field("upstreamError", record.upstreamDetail)
        line.field("upstreamStatus", int: record.upstreamStatus)
        self.sink(line.finish())
    }
}

/// A bounded set of route names for logs and metric labels (never ids or phone numbers).
enum RouteLabel {
    /// Each passthrough prefix with its label (`/sms/v2/` → `/sms/v2`), worked out once.
    private static let passthroughLabels = RequestTarget.passthroughPrefixes.map { ($0, String($0.dropLast())) }

    /// - Parameter path: The request's path, without its query.
    static func of(_ path: Substring) -> String {
        if path.hasBytePrefix("/v1/results:batch") { return "/v1/results:batch" }
        if path.hasBytePrefix("/v1/results/") { return "/v1/results" }
        if path.hasBytePrefix("/v1/requests/") { return "/v1/requests" }
        if path.hasBytePrefix("/v1/events") { return "/v1/events" }
        for (prefix, label) in Self.passthroughLabels where path.hasBytePrefix(prefix) {
            return label
        }
        switch path {
        case "/healthz": return "/healthz"
        case "/readyz": return "/readyz"
        case "/metrics": return "/metrics"
        default: return "other"
        }
    }
}
