// UpstreamClient: HTTP calls to SENS over one libcurl multi handle, driven by one thread, bridged to Swift concurrency.

public import Logging
public import NIOCore
public import ServiceLifecycle
import Synchronization

/// One HTTP request to the upstream, already signed.
public struct UpstreamRequest: Sendable {
    /// The HTTP method, upper case.
    public var method: String
    /// The request-target: an absolute path plus `?query`, exactly as it goes on the wire.
    public var target: String
    /// Header lines to send, as (name, value); curl adds `Host` and `Content-Length` itself.
    public var headers: [(String, String)]
    /// The body to send, or `nil` for none.
    public var body: ByteBuffer?
    /// Overrides the client's total timeout for this request.
    public var timeout: Duration?

    /// Creates a request.
    public init(method: String, target: String, headers: [(String, String)] = [], body: ByteBuffer? = nil, timeout: Duration? = nil) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

extension UpstreamRequest {
    /// Whether a request of `method` may be sent twice without harm: `GET` and `HEAD`, which only read. Everything
    /// else is a send (SENS's `PUT` and `DELETE` change state too). The one definition retries, curl's rewinding, the
    /// in-flight caps and the error a caller sees all use.
    public static func isRepeatable(method: String) -> Bool {
        method == "GET" || method == "HEAD"
    }
}

/// The upstream's answer: status, content type and body, untouched.
public struct UpstreamResponse: Sendable {
    /// HTTP status code.
    public var status: Int
    /// The `Content-Type` header, if the upstream sent one.
    public var contentType: String?
    /// The `Retry-After` header in seconds, if the upstream sent one.
    public var retryAfterSeconds: Int?
    /// The body bytes, exactly as received.
    public var body: ByteBuffer

    public init(status: Int, contentType: String?, retryAfterSeconds: Int?, body: ByteBuffer) {
        self.status = status
        self.contentType = contentType
        self.retryAfterSeconds = retryAfterSeconds
        self.body = body
    }
}

/// How far a request got on the wire before it failed: what retries, the circuit breaker and the error a caller
/// sees are decided from (read from curl's transfer info, not guessed from its error codes).
public enum WireStage: Sendable, Equatable {
    /// No connection was made (refused, DNS, connect timeout): nothing of the request left.
    case notConnected
    /// A connection was made but no byte of the request was sent (the TLS handshake failed or timed out).
    case connected
    /// The request, or part of it, was sent: it may have reached the upstream.
    case requestSent
}

/// Why an upstream call produced no HTTP response.
public struct UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable kind of failure; the gateway maps each kind to one error code of its own.
    public enum Kind: String, Sendable, Equatable {
        /// Nothing of the request was sent: no connection (refused, DNS, connect timeout) or no TLS session (handshake
        /// failed or timed out). Any method may be retried, and the upstream counts as unreachable.
        case connectFailed
        /// The connection failed after the request was sent: reset, closed mid-response. It may have reached the
        /// upstream.
        case unreachable
        /// The total timeout passed after the request was sent.
        case timeout
        /// The response body was larger than the configured cap.
        case responseTooLarge
        /// The gateway's budget for buffered answers was spent (its own overload, not the upstream's fault).
        case overloaded
        /// What came back was not HTTP.
        case invalidResponse
        /// The calling task was cancelled.
        case cancelled
        /// The client is shutting down and takes no new requests.
        case shuttingDown
        /// The request or configuration cannot be sent (bad URL, curl refused an option).
        case invalidRequest
    }

    /// The kind of failure.
    public let kind: Kind
    /// How far the request got before it failed.
    public let stage: WireStage
    /// A short description of what happened (curl's own error text where it gave one), safe to log: never a header
    /// value or body.
    public let detail: String

    public init(_ kind: Kind, _ detail: String, stage: WireStage = .notConnected) {
        self.kind = kind
        self.detail = detail
        self.stage = stage
    }

    /// Whether the request may have reached the upstream (so a send may have happened).
    public var mayHaveReachedUpstream: Bool { self.stage == .requestSent }

    public var description: String { "\(self.kind.rawValue): \(self.detail)" }
}

/// Settings of the upstream client.
public struct UpstreamConfiguration: Sendable {
    /// Scheme, host and optional port of the upstream, e.g. `https://sens.apigw.ntruss.com`. No path.
    public var baseURL: String
    /// Time allowed to establish a connection.
    public var connectTimeout: Duration
    /// Time allowed for a whole request, connection included.
    public var requestTimeout: Duration
    /// Largest response body accepted; larger ones fail with ``UpstreamError/Kind/responseTooLarge``.
    public var maxResponseBytes: Int
    /// Response bytes all calls in flight may hold at once; a body that would pass it fails like one over
    /// ``maxResponseBytes``. The memory budget for answers.
    public var maxBufferedResponseBytes: Int
    /// Idle connections the multi handle keeps open for reuse.
    public var maxIdleConnections: Int
    /// A PEM file of the certificate authorities to trust for an `https` upstream, instead of the system's; `nil`
    /// trusts the system's. Certificates and host names are verified either way.
    public var caFile: String?

    public init(
        baseURL: String,
        connectTimeout: Duration = .seconds(3),
        requestTimeout: Duration = .seconds(10),
        maxResponseBytes: Int = 4 * 1024 * 1024,
        maxBufferedResponseBytes: Int = 64 << 20,
        maxIdleConnections: Int = 256,
        caFile: String? = nil
    ) {
        self.baseURL = baseURL
        self.caFile = caFile
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
        self.maxBufferedResponseBytes = max(maxBufferedResponseBytes, maxResponseBytes)
        self.maxIdleConnections = maxIdleConnections
    }
}

/// An HTTP client for one upstream origin, built on one curl multi handle.
///
/// Requests may be made from any task; they are handed to the client's own thread, which owns every curl handle.
/// Connections stay open between requests (keep-alive, HTTP/2 multiplexing over TLS where offered), redirects are
/// never followed and no other scheme or host can be reached. As a `Service` it stops on graceful shutdown after
/// the requests in flight have finished.
public final class UpstreamClient: Service, Sendable {
    /// The normalized origin requests go to.
    public let origin: Origin
    private let loop: CurlLoop

    /// Creates the client and starts its thread.
    /// - Parameters:
    ///   - configuration: Where the upstream is and how patient to be.
    ///   - logger: Receives start and stop messages.
    /// - Throws: ``UpstreamError/Kind/invalidRequest`` when the base URL is not `http(s)://host[:port]`.
    public init(configuration: UpstreamConfiguration, logger: Logger = Logger(label: "sensgate.upstream")) throws(UpstreamError) {
        let origin = try Origin(parsing: configuration.baseURL)
        self.origin = origin
        self.loop = try CurlLoop(origin: origin, configuration: configuration, logger: logger)
    }

    /// Sends one request and waits for the whole response.
    /// - Parameter request: The request; its target must be an absolute path.
    /// - Returns: The upstream's response, whatever its status.
    /// - Throws: ``UpstreamError`` when no HTTP response came back.
    public func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        guard request.target.utf8.first == UInt8(ascii: "/") else {
            throw UpstreamError(.invalidRequest, "request-target must be an absolute path")
        }
        return try await self.loop.execute(request).get()
    }

    /// Sends one request without a task: `completion` runs once with the response or the error, on the client's own
    /// thread, so it must only hand the result on (for example to an event loop), never block.
    /// - Parameters:
    ///   - request: The request; its target must be an absolute path.
    ///   - completion: Receives the upstream's response, whatever its status, or why none came back.
    /// - Returns: A handle that can cancel the call.
    @discardableResult
    public func execute(_ request: UpstreamRequest, completion: @escaping @Sendable (Result<UpstreamResponse, UpstreamError>) -> Void) -> UpstreamCall {
        guard request.target.utf8.first == UInt8(ascii: "/") else {
            completion(.failure(UpstreamError(.invalidRequest, "request-target must be an absolute path")))
            return UpstreamCall(loop: self.loop, transfer: nil)
        }
        return UpstreamCall(loop: self.loop, transfer: self.loop.execute(request, completion: completion))
    }

    /// Whether the client still takes new requests (false once shutdown has begun).
    public var isAccepting: Bool { self.loop.isAccepting }

    /// Runs until graceful shutdown, then lets the requests in flight finish and stops the thread.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Stops taking new requests, waits for the ones in flight, then stops the thread. Safe to call twice.
    public func shutdown() async {
        await self.loop.shutdown()
    }
}

/// A call in flight, started by ``UpstreamClient/execute(_:completion:)``.
public struct UpstreamCall: Sendable {
    let loop: CurlLoop
    /// `nil` when the call was refused before it started.
    let transfer: Transfer?

    /// Stops the call; its completion runs with ``UpstreamError/Kind/cancelled`` unless it already ran.
    public func cancel() {
        if let transfer = self.transfer { self.loop.cancel(transfer) }
    }
}

/// The scheme, host and port every request goes to.
public struct Origin: Sendable, Equatable, CustomStringConvertible {
    /// `http` or `https`.
    public let scheme: String
    /// `host` or `host:port` as given.
    public let authority: String

    public var description: String { "\(self.scheme)://\(self.authority)" }

    /// Parses `http(s)://host[:port]` with an optional trailing slash; anything else is rejected.
    public init(parsing text: String) throws(UpstreamError) {
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") {
            scheme = "https"
        } else if lower.hasPrefix("http://") {
            scheme = "http"
        } else {
            throw UpstreamError(.invalidRequest, "upstream URL must start with http:// or https://")
        }
        var authority = String(text.dropFirst(scheme.count + 3))
        if authority.hasSuffix("/") { authority.removeLast() }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
        guard !authority.isEmpty, authority.allSatisfy({ allowed.contains($0) }), authority.first != ":" else {
            throw UpstreamError(.invalidRequest, "upstream URL must be scheme://host[:port] with no path, query or user")
        }
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            let port = authority[authority.index(after: colon)...]
            guard let number = Int(port), (1...65535).contains(number) else {
                throw UpstreamError(.invalidRequest, "upstream URL has an invalid port")
            }
        }
        self.scheme = scheme
        self.authority = authority
    }
}
