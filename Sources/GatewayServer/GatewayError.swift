import DeliveryResults
public import HTTPTypes
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
        case upstreamAuthFailed = "upstream_auth_failed"
        case upstreamThrottled = "upstream_throttled"
        case upstreamError = "upstream_error"
        case upstreamUnreachable = "upstream_unreachable"
        case upstreamTimeout = "upstream_timeout"
        case upstreamMalformed = "upstream_malformed"
        case internalError = "internal_error"

        /// The HTTP status sensgate answers with.
        public var status: HTTPResponse.Status {
            switch self {
            case .invalidRequest: .badRequest
            case .unauthorized: .unauthorized
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .payloadTooLarge: .contentTooLarge
            case .rateLimited: .tooManyRequests
            case .upstreamAuthFailed, .upstreamError, .upstreamUnreachable, .upstreamMalformed: .badGateway
            case .upstreamThrottled: .serviceUnavailable
            case .upstreamTimeout: .gatewayTimeout
            case .internalError: .internalServerError
            }
        }

        /// `transient` when the same call may succeed later, else `permanent`.
        public var errorClass: String {
            switch self {
            case .rateLimited, .upstreamThrottled, .upstreamError, .upstreamUnreachable, .upstreamTimeout, .upstreamMalformed,
                .internalError:
                "transient"
            case .invalidRequest, .unauthorized, .notFound, .methodNotAllowed, .payloadTooLarge, .upstreamAuthFailed:
                "permanent"
            }
        }
    }

    /// The stable code.
    public var code: Code
    /// A human-readable explanation; never contains a secret or a request body.
    public var message: String
    /// The upstream's HTTP status when the error comes from an upstream answer.
    public var upstreamStatus: Int?
    /// Seconds the caller should wait before retrying, sent as `Retry-After`.
    public var retryAfterSeconds: Int?

    public init(_ code: Code, _ message: String, upstreamStatus: Int? = nil, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.upstreamStatus = upstreamStatus
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }

    /// Whether a caller may retry: exactly when the class is `transient`.
    public var retryable: Bool { self.code.errorClass == "transient" }

    /// Maps a transport failure of the upstream client.
    public init(upstream error: UpstreamError) {
        switch error.kind {
        case .timeout: self.init(.upstreamTimeout, "SENS did not answer in time (\(error.detail))")
        case .responseTooLarge: self.init(.upstreamMalformed, "SENS answered with a body over the size limit")
        case .invalidResponse: self.init(.upstreamMalformed, "SENS answered with something that is not HTTP (\(error.detail))")
        case .connectFailed, .unreachable, .shuttingDown, .cancelled: self.init(.upstreamUnreachable, "SENS could not be reached (\(error.detail))")
        case .invalidRequest: self.init(.internalError, "the upstream request could not be built (\(error.detail))")
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
        default: GatewayError(.upstreamMalformed, "SENS answered with unexpected HTTP \(status)", upstreamStatus: status)
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
        json.string(self.code.errorClass)
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
