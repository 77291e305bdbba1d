import NIOCore
import NIOHTTP1
@testable import GatewayServer
import SENSClient
import Store
import Testing
import UpstreamClient

/// The pure half of idempotent sends (PRODUCT.md §7), without sockets: which keys are keys, what a fingerprint covers,
/// and what a send's outcome leaves on its key.
@Suite("Idempotency: keys, fingerprints and settlements")
struct IdempotencyPolicyTests {
    @Test("a key is 1 to 255 printable ASCII characters, sent bare or as the IETF draft's quoted string")
    func keys() {
        #expect(Idempotency.parse("8e03978e-40d5-43e8-bc93-6894a57f9324") == "8e03978e-40d5-43e8-bc93-6894a57f9324")
        #expect(Idempotency.parse("\"8e03978e\"") == "8e03978e")
        #expect(Idempotency.parse(#""a\"b\\c""#) == #"a"b\c"#)
        #expect(Idempotency.parse("with space") == "with space")
        #expect(Idempotency.parse(String(repeating: "x", count: 255))?.utf8.count == 255)
        for bad in ["", "\"\"", String(repeating: "x", count: 256), "tab\there", "é", "\"open", #""a\b""#, #""a"b""#, #""\""#] {
            #expect(Idempotency.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("the fingerprint covers method, target and body, and no two of them run together")
    func fingerprints() {
        let body = ByteBuffer(string: #"{"messages":[{"to":"01012345678"}]}"#)
        let base = Idempotency.fingerprint(method: "POST", target: "/sms/v2/services/s/messages", body: body)
        #expect(base.utf8.count == 64)
        #expect(base == Idempotency.fingerprint(method: "POST", target: "/sms/v2/services/s/messages", body: body))
        #expect(base != Idempotency.fingerprint(method: "PUT", target: "/sms/v2/services/s/messages", body: body))
        #expect(base != Idempotency.fingerprint(method: "POST", target: "/sms/v2/services/t/messages", body: body))
        #expect(base != Idempotency.fingerprint(method: "POST", target: "/sms/v2/services/s/messages", body: ByteBuffer(string: "{}")))
        #expect(
            Idempotency.fingerprint(method: "POST", target: "/ab", body: ByteBuffer(string: "c"))
                != Idempotency.fingerprint(method: "POST", target: "/a", body: ByteBuffer(string: "bc")))
        // A body that is a slice of a larger buffer is hashed as its readable bytes only.
        var framed = ByteBuffer(string: "xx" + #"{"messages":[{"to":"01012345678"}]}"#)
        framed.moveReaderIndex(forwardBy: 2)
        #expect(base == Idempotency.fingerprint(method: "POST", target: "/sms/v2/services/s/messages", body: framed))
    }

    static func response(_ status: Int) -> UpstreamResponse {
        UpstreamResponse(status: status, contentType: "application/json", retryAfterSeconds: nil, body: ByteBuffer(string: "{}"))
    }

    static func settlement(_ sent: Result<UpstreamResponse, SENSCallFailure>) -> KeySettlement {
        Idempotency.settlement(of: sent, answer: sent.mapError { GatewayError($0, method: "POST") }.flatMap(Passthrough.answer))
    }

    static func label(_ settlement: KeySettlement) -> String {
        switch settlement {
        case .answered(let answer, _): "answered \(answer.status)"
        case .unknown: "unknown"
        case .released: "released"
        }
    }

    @Test("what SENS answered is kept; what never reached SENS frees the key; what may have reached it is unknown")
    func settlements() {
        for status in [200, 202, 400, 404, 500, 502, 503] {
            #expect(Self.label(Self.settlement(.success(Self.response(status)))) == "answered \(status)")
        }
        for status in [401, 403, 429] {
            #expect(Self.label(Self.settlement(.success(Self.response(status)))) == "released")
        }
        #expect(Self.label(Self.settlement(.success(Self.response(101)))) == "unknown")
        #expect(Self.label(Self.settlement(.failure(.refused(.rateLimited)))) == "released")
        #expect(Self.label(Self.settlement(.failure(.refused(.circuitOpen(retryAfterSeconds: 5))))) == "released")
        let refused = UpstreamError(.connectFailed, "refused", stage: .notConnected)
        #expect(Self.label(Self.settlement(.failure(.transport(refused)))) == "released")
        let handshake = UpstreamError(.timeout, "TLS handshake timed out", stage: .connected)
        #expect(Self.label(Self.settlement(.failure(.transport(handshake)))) == "released")
        for kind in [UpstreamError.Kind.timeout, .unreachable, .invalidResponse, .responseTooLarge, .cancelled] {
            let sent = UpstreamError(kind, "after the request left", stage: .requestSent)
            #expect(Self.label(Self.settlement(.failure(.transport(sent)))) == "unknown", "\(kind)")
        }
    }

    @Test("each earlier use of a key answers as §7 says")
    func answers() throws {
        let stored = StoredAnswer(
            status: 202, contentType: "application/json", retryAfterSeconds: nil, headers: [StoredHeader(name: "X-Sensgate-Tracking", value: "R-1")],
            body: Array("{}".utf8))
        let replay = try #require(try KeyClaim.answered(stored).answer?.get())
        #expect(replay.status.code == 202)
        #expect(replay.headers.map { "\($0.0): \($0.1)" } == ["X-Sensgate-Tracking: R-1", "Idempotent-Replayed: true"])
        #expect(Array(replay.body.readableBytesView) == stored.body)
        let cases: [(KeyClaim, GatewayError.Code, UInt, GatewayError.ErrorClass)] = [
            (.inProgress, .idempotencyInProgress, 409, .transient),
            (.outcomeUnknown, .idempotencyOutcomeUnknown, 409, .unknown),
            (.mismatch, .idempotencyKeyMismatch, 422, .permanent),
        ]
        for (claim, code, status, errorClass) in cases {
            guard case .failure(let error)? = claim.answer else {
                Issue.record("\(claim) answers no error")
                continue
            }
            #expect(error.code == code)
            #expect(error.status.code == status)
            #expect(error.errorClass == errorClass)
        }
        #expect(KeyClaim.inProgress.answer.flatMap { if case .failure(let error) = $0 { error.retryAfterSeconds } else { nil } } == 1)
        #expect(KeyClaim.claimed(ClaimedKey(caller: "c", key: "k", token: "t", ttl: 1)).answer == nil)
    }
}
