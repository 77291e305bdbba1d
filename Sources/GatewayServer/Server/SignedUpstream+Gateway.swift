import SENSClient
import UpstreamClient

/// The SENS client seen from the HTTP side: its failures as the contract's errors, its notes in the request's record,
/// its metrics in the gateway's registry.
extension GatewayError {
    /// A failed call to SENS as the contract's error (PRODUCT.md §4.3).
    init(_ failure: SENSCallFailure, method: String) {
        switch failure {
        case .refused(.rateLimited):
            self.init(.rateLimited, "the gateway's limit on calls to SENS is reached; try again shortly", retryAfterSeconds: 1)
        case .refused(.tooManyInFlight):
            self.init(.rateLimited, "too many calls to SENS are in flight; try again shortly", retryAfterSeconds: 1)
        case .refused(.circuitOpen(let seconds)):
            self.init(.upstreamUnreachable, "SENS could not be connected to recently; failing fast", retryAfterSeconds: seconds)
        case .transport(let error):
            self.init(upstream: error, method: method)
        }
    }
}

extension RequestRecord: SENSCallRecord {}

extension GatewayMetrics: SENSCallMetrics {}
