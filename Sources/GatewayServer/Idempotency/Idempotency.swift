import NIOCore
import NIOHTTP1
import SENSClient
import Signing
import Store
import UpstreamClient

/// Idempotent sends (PRODUCT.md §7): a passthrough `POST` with an `Idempotency-Key` is claimed in the store before
/// anything is sent, and its outcome is kept with the key, so a retry is answered from the store and never reaches SENS
/// twice. The key is the caller's (two callers' keys never meet); its fingerprint is SHA-256 over method,
/// request-target and body.
///
/// Keyed sends fail closed: when the store cannot claim a key, the send is refused (`503 store_unavailable`), never
/// sent unguarded.
struct Idempotency: Sendable {
    /// The store, when one is open (without one, a keyed send is refused).
    let store: (any DeliveryStore)?
    /// How long a key is kept (`idempotency-ttl`), in milliseconds.
    let ttl: StoreTime
    /// How long a claim holds without an outcome: longer than any send can take (its whole upstream deadline, then the
    /// commit), so a claim that lapses belongs to a call that died mid-send.
    let lease: StoreTime
    let metrics: GatewayMetrics

    static let header = "Idempotency-Key"
    static let replayedHeader = "Idempotent-Replayed"

    /// The key a request carries.
    /// - Returns: The key, or `nil` for a request without one, or for a method other than `POST` (others are
    ///   idempotent by HTTP's rules, and the header means nothing on them).
    /// - Throws: `400 invalid_request` for a key that is not 1–255 printable ASCII characters, given more than once, or
    ///   missing on a send by a caller whose entry says `require-idempotency-key: true`.
    func key(_ exchange: Exchange) throws(GatewayError) -> String? {
        guard exchange.head.method == .POST else { return nil }
        let values = exchange.head.headers[Self.header]
        guard let value = values.first else {
            if exchange.record.caller?.requiresIdempotencyKey == true {
                throw GatewayError(.invalidRequest, "this caller's sends must carry an Idempotency-Key header")
            }
            return nil
        }
        guard values.count == 1, let key = Self.parse(value) else {
            throw GatewayError(.invalidRequest, "Idempotency-Key must be one value of 1 to 255 printable ASCII characters")
        }
        return key
    }

    /// A header value as a key: as sent (`Idempotency-Key: 8e03978e-…`, as most clients send it), or as the IETF
    /// draft's quoted string (`"8e03978e-…"`), which is the same key. A value that opens a quote must be a whole
    /// quoted string.
    static func parse(_ value: String) -> String? {
        var key = Substring(value)
        if key.hasPrefix("\"") {
            // An sf-string: `\"` and `\\` are the only escapes; a quote opens it only if another ends it.
            guard key.utf8.count >= 2, key.hasSuffix("\"") else { return nil }
            var unquoted = ""
            var escaped = false
            for character in key.dropFirst().dropLast() {
                if escaped {
                    guard character == "\"" || character == "\\" else { return nil }
                    unquoted.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    return nil
                } else {
                    unquoted.append(character)
                }
            }
            guard !escaped else { return nil }
            key = Substring(unquoted)
        }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return String(key)
    }

    /// SHA-256 over method, request-target and body (each run ended by a zero byte, so no two requests share one), as
    /// hex. The body is hashed where it lies.
    static func fingerprint(method: String, target: String, body: ByteBuffer) -> String {
        let digest = SHA256.digest { hasher in
            hasher.update(method)
            withUnsafeBytes(of: UInt8(0)) { hasher.update($0) }
            hasher.update(target)
            withUnsafeBytes(of: UInt8(0)) { hasher.update($0) }
            body.withUnsafeReadableBytes { hasher.update($0) }
        }
        let hex = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in digest {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Claims `key` for a send, or finds what its earlier use left.
    func claim(_ key: IdempotencyKey) async -> Result<KeyClaim, GatewayError> {
        guard let store = self.store else {
            return .failure(GatewayError(.storeUnavailable, "no store is open to keep the Idempotency-Key; nothing was sent", retryAfterSeconds: 1))
        }
        do {
            let claim = try await store.claimKey(key, now: StoreTime.now, lease: self.lease, ttl: self.ttl)
            self.metrics.recordIdempotency(outcome: claim.metricLabel)
            return .success(claim)
        } catch {
            self.metrics.recordStoreError(operation: "claim_key")
            return .failure(GatewayError(.storeUnavailable, "the store could not claim the Idempotency-Key; nothing was sent", retryAfterSeconds: 1))
        }
    }

    /// How a keyed send ended, as the key keeps it. Pure.
    ///
    /// - An answer SENS gave is kept (and replayed), whatever its status — a `5xx` too, since SENS may have sent
    ///   before failing — except `401`, `403` and `429`: SENS's gateway refused the call before it reached the
    ///   service (a signature, a key, a throttle), so nothing was sent and a retry under the key goes ahead.
    /// - A call the gateway's own limits refused, or that never connected, sent nothing: the key is freed.
    /// - Anything else — a timeout or a cut after the request left, an answer that is not HTTP — may have been sent:
    ///   the key says so until it expires.
    static func settlement(of sent: Result<UpstreamResponse, SENSCallFailure>, answer: Result<Answer, GatewayError>) -> KeySettlement {
        switch (sent, answer) {
        case (.success(let response), _) where [401, 403, 429].contains(response.status):
            return .released
        case (.success, .success(let answer)):
            return .answered(StoredAnswer(answer), tracking: nil)
        case (.success, .failure):
            return .unknown
        case (.failure(.refused), _):
            return .released
        case (.failure(.transport(let error)), _):
            return error.mayHaveReachedUpstream ? .unknown : .released
        }
    }
}

extension KeyClaim {
    /// The label of `sensgate_idempotency_total`.
    var metricLabel: String {
        switch self {
        case .claimed: "claimed"
        case .answered: "replayed"
        case .inProgress: "in_progress"
        case .outcomeUnknown: "outcome_unknown"
        case .mismatch: "mismatch"
        }
    }

    /// The answer to a send whose key was used before: the replay, or why nothing is sent. `nil` for a key this send
    /// claimed.
    var answer: Result<Answer, GatewayError>? {
        switch self {
        case .claimed:
            return nil
        case .answered(let stored):
            var answer = Answer(
                status: HTTPResponseStatus(statusCode: stored.status), contentType: stored.contentType,
                retryAfterSeconds: stored.retryAfterSeconds, body: ByteBuffer(bytes: stored.body))
            answer.headers = stored.headers.map { ($0.name, $0.value) }
            answer.headers.append((Idempotency.replayedHeader, "true"))
            return .success(answer)
        case .inProgress:
            return .failure(
                GatewayError(
                    .idempotencyInProgress, "a send with this Idempotency-Key is still in flight; retry shortly for its answer",
                    retryAfterSeconds: 1))
        case .outcomeUnknown:
            return .failure(
                GatewayError(
                    .idempotencyOutcomeUnknown,
                    "the first send with this Idempotency-Key may have reached SENS and its answer is unknown; nothing was sent again. Look the message up before sending it under a new key"))
        case .mismatch:
            return .failure(GatewayError(.idempotencyKeyMismatch, "this Idempotency-Key was used with another request (method, target or body)"))
        }
    }
}

extension StoredAnswer {
    /// An answer as the key keeps it: status, content type, `Retry-After`, the gateway's headers and the body.
    init(_ answer: Answer) {
        self.init(
            status: Int(answer.status.code), contentType: answer.contentType, retryAfterSeconds: answer.retryAfterSeconds,
            headers: answer.headers.map { StoredHeader(name: $0.0, value: $0.1) }, body: Array(answer.body.readableBytesView))
    }
}
