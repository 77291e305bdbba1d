import Signing
import UpstreamClient

/// Signs and sends requests to SENS: the one path every upstream call takes, passthrough and lookups alike.
struct SignedUpstream: Sendable {
    let client: UpstreamClient
    let credentials: CredentialStore
    let metrics: GatewayMetrics

    /// Signs at send time (so every attempt gets a fresh timestamp) over the exact request-target, then sends.
    /// - Parameters:
    ///   - request: The request, without credentials.
    ///   - route: The route label for metrics.
    ///   - record: Where the upstream status is noted for the access log.
    /// - Throws: ``GatewayError`` for a transport failure (never for an HTTP status).
    func send(_ request: UpstreamRequest, route: String, record: RequestRecord) async throws(GatewayError) -> UpstreamResponse {
        var request = request
        let signed = self.credentials.signer.sign(method: request.method, target: request.target)
        request.headers.append((SignatureHeader.timestamp, signed.timestamp))
        request.headers.append((SignatureHeader.accessKey, signed.accessKey))
        request.headers.append((SignatureHeader.signature, signed.signature))
        let start = ContinuousClock.now
        do {
            let response = try await self.client.execute(request)
            record.upstreamStatus = response.status
            self.metrics.recordUpstream(route: route, outcome: "\(response.status / 100)xx", duration: ContinuousClock.now - start)
            return response
        } catch {
            self.metrics.recordUpstream(route: route, outcome: error.kind.rawValue, duration: ContinuousClock.now - start)
            throw GatewayError(upstream: error)
        }
    }
}
