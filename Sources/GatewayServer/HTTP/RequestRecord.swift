/// What one request did, filled in by the handlers and read by the access log and metrics.
///
/// Invariant (hence `@unchecked Sendable`): one request's steps run one after another (on its connection's event loop; an
/// upstream call's completion hands over to that loop before the record is touched again), so the record is never touched by two threads at
/// once.
public final class RequestRecord: @unchecked Sendable {
    /// The caller's or a generated request id.
    public var requestID = ""
    /// The bounded route label for logs and metrics (`/sms/v2`, `/v1/results`, …).
    public var route = "other"
    /// Whether ``requestID`` came from the caller (then logs mask it like any other caller text).
    public var requestIDFromCaller = false
    /// The upstream's HTTP status, when an upstream call answered.
    public var upstreamStatus: Int?
    /// What the upstream client said of a failed call (curl's own text), for the access log.
    public var upstreamDetail: String?
    /// The contract error code, when the gateway answered with an error.
    public var errorCode: String?
    /// The error class, or for delivery results the result class.
    public var resultClass: String?
    /// Request body bytes read.
    public var bytesIn = 0
    /// What a send's `Idempotency-Key` said (`claimed`, `replayed`, `in_progress`, `mismatch`, `outcome_unknown`).
    public var idempotency: String?
    /// The authenticated caller, when caller tokens are configured.
    public var caller: Caller?

    init() {}
}
