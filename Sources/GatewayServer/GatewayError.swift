import DeliveryResults
import JSON
public import NIOHTTP1
public import UpstreamClient

/// An error the gateway answers with: one of the contract's stable codes, rendered as the spec's envelope.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable error codes of the HTTP contract (PRODUCT.md §4.3).
    public enum Code: String, Sendable, CaseIterable {
        case invalidRequest = "invalid_request"
        case unauthorized = "unauthorized"
        case notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case payloadTooLarge = "payload_too_large"
        case rateLimited = "rate_limited"
        case overloaded = "overloaded"
        case upstreamAuthFailed = "upstream_auth_failed"
        case upstreamThrottled = "upstream_throttled"
        case upstreamError = "upstream_error"
        case upstreamUnreachable = "upstream_unreachable"
        case upstreamTimeout = "upstream_timeout"
        case upstreamMalformed = "upstream_malformed"
        case upstreamOutcomeUnknown = "upstream_outcome_unknown"
        case storeUnavailable = "store_unavailable"
        case idempotencyInProgress = "idempotency_in_progress"
        case idempotencyOutcomeUnknown = "idempotency_outcome_unknown"
        case idempotencyKeyMismatch = "idempotency_key_mismatch"
        case internalError = "internal_error"

        /// The HTTP status sensgate answers with.
        public var status: HTTPResponseStatus {
            switch self {
            case .invalidRequest: .badRequest
            case .unauthorized: .unauthorized
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .payloadTooLarge: .payloadTooLarge
            case .rateLimited: .tooManyRequests
            case .upstreamAuthFailed, .upstreamError, .upstreamUnreachable, .upstreamMalformed, .upstreamOutcomeUnknown: .badGateway
            case .upstreamThrottled, .overloaded, .storeUnavailable: .serviceUnavailable
            case .upstreamTimeout: .gatewayTimeout
            case .internalError: .internalServerError
            case .idempotencyInProgress, .idempotencyOutcomeUnknown: .conflict
            case .idempotencyKeyMismatch: .unprocessableEntity
            }
        }

        /// The class an error of this code has unless it says otherwise: `transient` when the same call may succeed
        /// later, `permanent` when it will not, `unknown` when a send may have happened.
        public var defaultClass: ErrorClass {
            switch self {
            case .rateLimited, .overloaded, .upstreamThrottled, .upstreamError, .upstreamUnreachable, .upstreamTimeout, .upstreamMalformed,
                .storeUnavailable, .internalError, .idempotencyInProgress:
                .transient
            case .invalidRequest, .unauthorized, .notFound, .methodNotAllowed, .payloadTooLarge, .upstreamAuthFailed, .idempotencyKeyMismatch:
                .permanent
            case .upstreamOutcomeUnknown, .idempotencyOutcomeUnknown:
                .unknown
            }
        }
    }

    /// What a caller should do about an error.
    public enum ErrorClass: String, Sendable {
        /// The same call may succeed later: retry it.
        case transient
        /// It will not succeed as sent.
        case permanent
        /// A send may have happened: never retry blindly.
        case unknown
    }

    /// The stable code.
    public var code: Code
    /// A human-readable explanation; never contains a secret or a request body.
    public var message: String
    /// The upstream's HTTP status when the error comes from an upstream answer.
    public var upstreamStatus: Int?
    /// Seconds the caller should wait before retrying, sent as `Retry-After`.
    public var retryAfterSeconds: Int?
    /// The error's class (its code's unless the situation says otherwise).
    public var errorClass: ErrorClass
    /// The HTTP status sensgate answers with (its code's unless the situation says otherwise).
    public var status: HTTPResponseStatus

    public init(
        _ code: Code, _ message: String, upstreamStatus: Int? = nil, retryAfterSeconds: Int? = nil, errorClass: ErrorClass? = nil,
        status: HTTPResponseStatus? = nil
    ) {
        self.code = code
        self.message = message
        self.upstreamStatus = upstreamStatus
        self.retryAfterSeconds = retryAfterSeconds
        self.errorClass = errorClass ?? code.defaultClass
        self.status = status ?? code.status
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }

    /// Whether a caller may retry: exactly when the class is `transient`.
    public var retryable: Bool { self.errorClass == .transient }

    /// Maps a transport failure of the upstream client for a request of `method`.
    ///
    /// A send (any method but `GET` and `HEAD`) whose request may have reached SENS and got no usable answer is
    /// `upstream_outcome_unknown`, class `unknown` (504 after a timeout, else 502): it may have been sent, so it must
    /// not be retried blindly. curl's own text stays in the log, not in the answer.
    public init(upstream error: UpstreamError, method: String) {
        let isSend = !UpstreamRequest.isRepeatable(method: method)
        if isSend, error.mayHaveReachedUpstream, error.kind != .invalidRequest {
            self.init(
                .upstreamOutcomeUnknown,
                error.kind == .timeout
                    ? "SENS did not answer in time after the send was sent: it may have been sent; do not resend blindly"
                    : "the connection to SENS failed after the send was sent: it may have been sent; do not resend blindly",
                status: error.kind == .timeout ? .gatewayTimeout : .badGateway)
            return
        }
        switch error.kind {
        case .timeout: self.init(.upstreamTimeout, "SENS did not answer in time")
        case .responseTooLarge: self.init(.upstreamMalformed, "SENS answered with a body over the size limit")
        case .overloaded:
            self.init(.overloaded, "the gateway holds as many answers as it may; try again shortly", retryAfterSeconds: 1)
        case .invalidResponse: self.init(.upstreamMalformed, "SENS answered with something that is not HTTP")
        case .connectFailed: self.init(.upstreamUnreachable, "SENS could not be connected to")
        case .unreachable, .shuttingDown, .cancelled: self.init(.upstreamUnreachable, "SENS could not be reached")
        case .invalidRequest: self.init(.internalError, "the upstream request could not be built")
        }
    }

    /// Maps an upstream HTTP status that is not a success, per the contract's table.
    public static func upstreamStatus(_ status: Int, retryAfterSeconds: Int? = nil) -> GatewayError {
        switch status {
        case 400: GatewayError(.invalidRequest, "SENS refused the request as invalid", upstreamStatus: status)
        case 404: GatewayError(.notFound, "SENS has no such resource", upstreamStatus: status)
        case 401, 403: GatewayError(.upstreamAuthFailed, "SENS rejected the gateway's credentials", upstreamStatus: status)
        case 429: GatewayError(.upstreamThrottled, "SENS is throttling requests", upstreamStatus: status, retryAfterSeconds: retryAfterSeconds)
        case 500...599: GatewayError(.upstreamError, "SENS failed with HTTP \(status)", upstreamStatus: status)
        // 3xx, 405, 409, 413, …: the same call will not go better (PRODUCT.md §4.3).
        default: GatewayError(.upstreamError, "SENS answered with unexpected HTTP \(status)", upstreamStatus: status, errorClass: .permanent)
        }
    }

    /// The spec's envelope: `{"error": {"code", "class", "retryable", "message", "upstreamStatus", "requestId"}}`.
    public func envelope(requestID: String?) -> [UInt8] {
        var json = JSONWriter(capacity: 256)
        self.write(into: &json, requestID: requestID)
        return json.bytes
    }

    /// Writes the envelope object as one value (also used for the items of a batch).
    func write(into json: inout JSONWriter, requestID: String?) {
        json.beginObject()
        json.key("error")
        json.beginObject()
        json.key("code")
        json.string(self.code.rawValue)
        json.key("class")
        json.string(self.errorClass.rawValue)
        json.key("retryable")
        json.bool(self.retryable)
        json.key("message")
        json.string(self.message)
        json.key("upstreamStatus")
        json.int(self.upstreamStatus)
        json.key("requestId")
        json.string(requestID)
        json.endObject()
        json.endObject()
    }
}
