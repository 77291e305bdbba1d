// SENSClient: every call to SENS — signed, admitted (rate, calls in flight, circuit breaker), sent through the curl
// client, retried as far as is safe — with one outcome type saying how far each call got.

import Signing
import Synchronization
package import UpstreamClient

/// Why a call to SENS produced no answer to pass on.
package enum SENSCallFailure: Error, Sendable {
    /// The gateway's own limits refused it: nothing was sent.
    case refused(UpstreamGuard.Refusal)
    /// The transport failed; the error says how far the request got (``UpstreamError/stage``).
    case transport(UpstreamError)
}

/// What a call to SENS notes for its caller's access log while it runs: the status of the last answer, curl's text
/// for a failure.
package protocol SENSCallRecord: AnyObject, Sendable {
    var upstreamStatus: Int? { get set }
    var upstreamDetail: String? { get set }
}

/// Where a SENS call's metrics go.
package protocol SENSCallMetrics: Sendable {
    /// A call the gateway's own limits refused (`rate`, `in_flight`, `circuit_open`).
    func recordRefusal(reason: String)
    /// One attempt's outcome (`2xx` … `5xx`, or a transport failure kind) and how long it took.
    func recordUpstream(route: String, outcome: String, duration: Duration)
    func recordRetry(route: String, reason: String)
    /// The circuit breaker opened or reopened.
    func recordBreakerOpened()
}

/// Signs and sends requests to SENS: the one path every upstream call takes, passthrough and lookups alike.
///
/// Each attempt is admitted by the ``UpstreamGuard`` (rate, calls in flight, circuit breaker), signed afresh, and
/// given what is left of one deadline; retryable failures are tried again per the ``RetryPolicy``.
package final class SignedUpstream: Sendable {
    package let client: UpstreamClient
    package let credentials: CredentialStore
    package let metrics: any SENSCallMetrics
    package let policy: RetryPolicy
    package let limits: UpstreamGuard
    /// The deadline for all attempts of one call together.
    package let timeout: Duration

    package init(
        client: UpstreamClient, credentials: CredentialStore, metrics: any SENSCallMetrics, policy: RetryPolicy, limits: UpstreamGuard,
        timeout: Duration
    ) {
        self.client = client
        self.credentials = credentials
        self.metrics = metrics
        self.policy = policy
        self.limits = limits
        self.timeout = timeout
    }

    /// The route label of the gateway's own calls to SENS (the tracker's polls), admitted after caller traffic
    /// (``UpstreamGuard/admit(_:background:now:)``).
    package static let backgroundRoute = "tracker"

    /// Sends a request, retrying what may be retried; cancelling the calling task cancels the call.
    /// - Parameters:
    ///   - request: The request, without credentials.
    ///   - route: The route label for metrics.
    ///   - record: Where the upstream status is noted for the access log.
    /// - Returns: The last response SENS gave, whatever its status.
    /// - Throws: ``SENSCallFailure`` for a transport failure or a refusal by the gateway's own limits.
    package func send(_ request: UpstreamRequest, route: String, record: any SENSCallRecord) async throws(SENSCallFailure) -> UpstreamResponse {
        let cancellation = UpstreamCancellation()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<UpstreamResponse, SENSCallFailure>, Never>) in
                self.send(request, route: route, record: record, cancellation: cancellation) { continuation.resume(returning: $0) }
            }
        } onCancel: {
            cancellation.cancel()
        }
        return try result.get()
    }

    /// Sends a request, retrying what may be retried, without a task.
    ///
    /// `completion` runs exactly once, on whichever thread finished the call (usually the upstream client's), so it
    /// must only hand the result on. Retries wait in a task of their own; they are rare. `cancellation` is `nil` for a
    /// call no one cancels.
    package func send(
        _ request: UpstreamRequest, route: String, record: any SENSCallRecord, cancellation: UpstreamCancellation?,
        completion: @escaping @Sendable (Result<UpstreamResponse, SENSCallFailure>) -> Void
    ) {
        let deadline = ContinuousClock.now + (request.timeout ?? self.timeout)
        self.attempt(request, retry: 0, deadline: deadline, route: route, record: record, cancellation: cancellation, completion: completion)
    }

    /// One admitted, freshly signed attempt; then the answer, or another attempt.
    private func attempt(
        _ request: UpstreamRequest, retry: Int, deadline: ContinuousClock.Instant, route: String, record: any SENSCallRecord,
        cancellation: UpstreamCancellation?, completion: @escaping @Sendable (Result<UpstreamResponse, SENSCallFailure>) -> Void
    ) {
        if cancellation?.isCancelled == true {
            completion(.failure(.transport(UpstreamError(.cancelled, "the call was cancelled while waiting to retry"))))
            return
        }
        let kind = UpstreamGuard.Kind(method: request.method)
        let admission: CircuitBreaker.Admission
        do {
            admission = try self.limits.admit(kind, background: route == Self.backgroundRoute)
        } catch {
            self.metrics.recordRefusal(reason: error.metricLabel)
            completion(.failure(.refused(error)))
            return
        }
        var signedRequest = request
        signedRequest.timeout = max(.milliseconds(1), deadline - .now)
        // Signed at send time, so every attempt carries a fresh timestamp.
        let signed = self.credentials.signer.sign(method: request.method, target: request.target)
        signedRequest.headers.append((SignatureHeader.timestamp, signed.timestamp))
        signedRequest.headers.append((SignatureHeader.accessKey, signed.accessKey))
        signedRequest.headers.append((SignatureHeader.signature, signed.signature))
        let start = ContinuousClock.now
        let call = self.client.execute(signedRequest) { result in
            self.limits.release(kind)
            let outcome: RetryPolicy.Outcome
            switch result {
            case .success(let response):
                self.record(self.limits.breaker.record(.reachable, for: admission))
                record.upstreamStatus = response.status
                self.metrics.recordUpstream(route: route, outcome: Self.statusClass(response.status), duration: ContinuousClock.now - start)
                guard response.status == 429 || (500...599).contains(response.status) else {
                    completion(.success(response))
                    return
                }
                outcome = .status(response.status, retryAfterSeconds: response.retryAfterSeconds)
            case .failure(let error):
                // Every outcome reaches the breaker, so a probe always closes or reopens the circuit.
                switch error.kind {
                case .connectFailed: self.record(self.limits.breaker.record(.unreachable, for: admission))
                case .timeout, .unreachable: self.record(self.limits.breaker.record(.noAnswer, for: admission))
                case .invalidResponse, .responseTooLarge: self.record(self.limits.breaker.record(.reachable, for: admission))
                case .cancelled, .shuttingDown, .invalidRequest, .overloaded: self.limits.breaker.abandon(admission)
                }
                record.upstreamDetail = error.detail
                self.metrics.recordUpstream(route: route, outcome: error.kind.rawValue, duration: ContinuousClock.now - start)
                switch error.kind {
                case .connectFailed: outcome = .connectFailed
                case .unreachable: outcome = .connectionLost
                default: outcome = .other
                }
            }
            guard cancellation?.isCancelled != true, RetryPolicy.isRetryable(outcome, method: request.method),
                let delay = self.policy.delay(beforeRetry: retry + 1, after: outcome, remaining: deadline - .now, random: Double.random(in: 0..<1))
            else {
                completion(result.mapError { .transport($0) })
                return
            }
            self.metrics.recordRetry(route: route, reason: outcome.metricLabel)
            Task {
                try? await Task.sleep(for: delay)
                self.attempt(
                    request, retry: retry + 1, deadline: deadline, route: route, record: record, cancellation: cancellation, completion: completion)
            }
        }
        cancellation?.track(call)
    }
}

extension SignedUpstream {
    /// Counts the breaker's transitions.
    private func record(_ transition: CircuitBreaker.Transition?) {
        switch transition {
        case .opened, .reopened: self.metrics.recordBreakerOpened()
        case .closed, nil: break
        }
    }

    /// `1xx` … `5xx` as metric label values, made once (statuses outside 100–599 are counted as `other`).
    private static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]

    static func statusClass(_ status: Int) -> String {
        (100...599).contains(status) ? Self.statusClasses[status / 100 - 1] : "other"
    }
}

/// Cancels one call to SENS, whichever attempt it is on.
package final class UpstreamCancellation: Sendable {
    private let state = Mutex<(cancelled: Bool, call: UpstreamCall?)>((false, nil))

    var isCancelled: Bool { self.state.withLock { $0.cancelled } }

    /// Cancels the attempt in flight, and any later one before it starts.
    func cancel() {
        let call = self.state.withLock { state -> UpstreamCall? in
            state.cancelled = true
            return state.call
        }
        call?.cancel()
    }

    /// Notes the attempt in flight (cancelled at once if the call already was).
    func track(_ call: UpstreamCall) {
        let cancelled = self.state.withLock { state -> Bool in
            state.call = call
            return state.cancelled
        }
        if cancelled { call.cancel() }
    }
}

extension RetryPolicy.Outcome {
    var metricLabel: String {
        switch self {
        case .connectFailed: "connect_failed"
        case .connectionLost: "connection_lost"
        case .status(let status, _): status == 429 ? "429" : "5xx"
        case .other: "other"
        }
    }
}

extension UpstreamGuard.Refusal {
    var metricLabel: String {
        switch self {
        case .rateLimited: "rate"
        case .tooManyInFlight: "in_flight"
        case .circuitOpen: "circuit_open"
        }
    }
}
