/// An `Idempotency-Key` as the store keeps it (PRODUCT.md §7): the caller's key, scoped to the caller, with the
/// fingerprint of the request that first used it.
public struct IdempotencyKey: Sendable, Hashable {
    /// The caller's name (`anonymous` without caller tokens): two callers' keys never meet.
    public var caller: String
    /// The key as the caller sent it (1–255 printable ASCII characters).
    public var key: String
    /// SHA-256 over the request's method, target and body, as hex: the same key with another request is a mismatch.
    public var fingerprint: String

    public init(caller: String, key: String, fingerprint: String) {
        self.caller = caller
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// SENS's answer to a keyed send, kept with its key and replayed as it was.
public struct StoredAnswer: Sendable, Equatable {
    public var status: Int
    public var contentType: String?
    public var retryAfterSeconds: Int?
    /// The gateway's own headers on the answer (`X-Sensgate-Tracking`), as name and value.
    public var headers: [StoredHeader]
    public var body: [UInt8]

    public init(status: Int, contentType: String?, retryAfterSeconds: Int? = nil, headers: [StoredHeader] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.retryAfterSeconds = retryAfterSeconds
        self.headers = headers
        self.body = body
    }
}

/// One header of a ``StoredAnswer``.
public struct StoredHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// The headers as the store keeps them: one `name: value` per line (names and values are the gateway's own: no
    /// line breaks in them).
    static func text(_ headers: [StoredHeader]) -> String {
        headers.map { $0.name + ": " + $0.value }.joined(separator: "\n")
    }

    /// Headers read back from ``text(_:)``.
    static func parse(_ text: String) -> [StoredHeader] {
        text.split(separator: "\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return StoredHeader(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
    }
}

/// What claiming a key found (``DeliveryStore/claimKey(_:now:lease:ttl:)``).
public enum KeyClaim: Sendable, Equatable {
    /// The key is new (or its earlier use expired): it is now this call's, and the send may go to SENS.
    case claimed(ClaimedKey)
    /// The key's send was answered: this is the answer to replay.
    case answered(StoredAnswer)
    /// The key's first call is still in flight (its claim has not lapsed).
    case inProgress
    /// The key's first call may have reached SENS and no answer is known: it timed out or was cut, or the process
    /// working it stopped (its claim lapsed). Nothing may be sent under the key again.
    case outcomeUnknown
    /// The key was used with another request (another fingerprint).
    case mismatch
}

extension KeyClaim {
    /// What a key's row (whichever backend keeps it) says to a second call with the fingerprint `asking` at `now`.
    /// - Parameter answer: Reads the stored answer, for a key in state `answered`.
    static func found(
        fingerprint: String, state: String, claimedUntil: StoreTime, asking: String, now: StoreTime,
        answer: () throws(StoreError) -> StoredAnswer
    ) throws(StoreError) -> KeyClaim {
        guard fingerprint == asking else { return .mismatch }
        switch state {
        case "answered":
            return .answered(try answer())
        case "unknown":
            return .outcomeUnknown
        case "in_progress":
            // A claim that lapsed belongs to a call that died (or could not write its outcome) mid-send.
            return claimedUntil > now ? .inProgress : .outcomeUnknown
        default:
            throw .corrupt("an idempotency key's state")
        }
    }
}

/// A key claimed by one call: settled only under the claim the row still carries.
public struct ClaimedKey: Sendable, Equatable {
    public var caller: String
    public var key: String
    /// The claim's token: a settlement under another token (a lapsed, taken-over claim) writes nothing.
    public var token: String
    /// How long the key is kept once settled, from the settlement (the claim's `ttl`).
    public var ttl: StoreTime

    public init(caller: String, key: String, token: String, ttl: StoreTime) {
        self.caller = caller
        self.key = key
        self.token = token
        self.ttl = ttl
    }
}

/// How a keyed send ended, written with its key (``DeliveryStore/settleKey(_:as:now:)``).
public enum KeySettlement: Sendable {
    /// SENS answered: the answer is kept and replayed; `tracking`, when the send is tracked, is recorded in the same
    /// transaction (a replay then never tracks it twice).
    case answered(StoredAnswer, tracking: TrackedRequest?)
    /// The send may have reached SENS and no answer came: the key answers `outcome unknown` until it expires.
    case unknown
    /// Nothing reached SENS (refused by the gateway's limits, no connection, SENS's gateway refused it): the key is
    /// freed, so a retry under it is sent.
    case released
}
