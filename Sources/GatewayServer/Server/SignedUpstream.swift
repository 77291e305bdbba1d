import Signing
import UpstreamClient

/// Signs and sends requests to SENS: the one path every upstream call takes, passthrough and lookups alike.
///
/// Each attempt is admitted by the ``UpstreamGuard`` (rate, calls in flight, circuit breaker), signed afresh, and
/// given what is left of one deadline; retryable failures are tried again per the ``RetryPolicy``.
struct SignedUpstream: Sendable {
    let client: UpstreamClient
    let credentials: CredentialStore
    let metrics: GatewayMetrics
    let policy: RetryPolicy
    let limits: UpstreamGuard
    /// The deadline for all attempts of one call together.
    let timeout: Duration

    /// Sends a request, retrying what may be retried.
    /// - Parameters:
    ///   - request: The request, without credentials.
    ///   - route: The route label for metrics.
    ///   - record: Where the upstream status is noted for the access log.
    /// - Returns: The last response SENS gave, whatever its status.
    /// - Throws: ``GatewayError`` for a transport failure or a refusal by the gateway's own limits.
    func send(_ request: UpstreamRequest, route: String, record: RequestRecord) async throws(GatewayError) -> UpstreamResponse {
        let deadline = ContinuousClock.now + (request.timeout ?? self.timeout)
        var retry = 0
        while true {
            let result = try await self.attempt(request, deadline: deadline, route: route, record: record)
            let outcome: RetryPolicy.Outcome
            switch result {
            case .success(let response):
                guard response.status == 429 || (500...599).contains(response.status) else { return response }
                outcome = .status(response.status, retryAfterSeconds: response.retryAfterSeconds)
            case .failure(let error):
                switch error.kind {
                case .connectFailed: outcome = .connectFailed
                case .unreachable: outcome = .connectionLost
                default: outcome = .other
                }
            }
            retry += 1
            guard !Task.isCancelled, RetryPolicy.isRetryable(outcome, method: request.method),
                let delay = self.policy.delay(beforeRetry: retry, after: outcome, remaining: deadline - .now, random: Double.random(in: 0..<1))
            else {
                switch result {
                case .success(let response): return response
                case .failure(let error): throw GatewayError(upstream: error)
                }
            }
            self.metrics.recordRetry(route: route, reason: outcome.metricLabel)
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw GatewayError(.upstreamUnreachable, "the call was cancelled while waiting to retry")
            }
        }
    }

    /// One admitted, freshly signed attempt.
    private func attempt(_ request: UpstreamRequest, deadline: ContinuousClock.Instant, route: String, record: RequestRecord)
        async throws(GatewayError) -> Result<UpstreamResponse, UpstreamError>
    {
        do {
            try self.limits.admit()
        } catch {
            self.metrics.recordRefusal(reason: error.metricLabel)
            throw error.gatewayError
        }
        defer { self.limits.release() }
        var request = request
        request.timeout = max(.milliseconds(1), deadline - .now)
        // Signed at send time, so every attempt carries a fresh timestamp.
        let signed = self.credentials.signer.sign(method: request.method, target: request.target)
        request.headers.append((SignatureHeader.timestamp, signed.timestamp))
        request.headers.append((SignatureHeader.accessKey, signed.accessKey))
        request.headers.append((SignatureHeader.signature, signed.signature))
        let start = ContinuousClock.now
        do {
            let response = try await self.client.execute(request)
            self.limits.breaker.recordSuccess()
            record.upstreamStatus = response.status
            self.metrics.recordUpstream(route: route, outcome: "\(response.status / 100)xx", duration: ContinuousClock.now - start)
            return .success(response)
        } catch {
            if error.kind == .connectFailed, self.limits.breaker.recordConnectFailure() {
                self.metrics.recordBreakerOpened()
            }
            self.metrics.recordUpstream(route: route, outcome: error.kind.rawValue, duration: ContinuousClock.now - start)
            return .failure(error)
        }
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

    var gatewayError: GatewayError {
        switch self {
        case .rateLimited:
            GatewayError(.rateLimited, "the gateway's limit on calls to SENS is reached; try again shortly", retryAfterSeconds: 1)
        case .tooManyInFlight:
            GatewayError(.rateLimited, "too many calls to SENS are in flight; try again shortly", retryAfterSeconds: 1)
        case .circuitOpen(let seconds):
            GatewayError(.upstreamUnreachable, "SENS could not be connected to recently; failing fast", retryAfterSeconds: seconds)
        }
    }
}
