import Logging
import NIOCore
import NIOHTTP1
import SENSClient
import Store
import Synchronization
import UpstreamClient

/// The signed passthrough of PRODUCT.md §4.1: forwards a request byte for byte, signed, and returns the upstream's
/// status, body and content type unchanged. A keyed send is claimed first and its outcome kept with its key (§7); an
/// accepted tracked send is recorded (§6) — what the store must keep is committed before SENS's answer goes back.
///
/// A class: each request's closures capture it, and as a struct every capture copied (retained) its score of
/// references.
final class Passthrough: Sendable {
    let upstream: SignedUpstream
    let maxBodyBytes: Int
    /// Where tracked sends are recorded (PRODUCT.md §6).
    let tracking: Tracking
    /// Where keyed sends are claimed and settled (PRODUCT.md §7).
    let idempotency: Idempotency
    /// How long SENS's answer may wait for the store to commit what it must keep (a tracking record, a key's
    /// outcome): past it the answer goes back anyway — a caller waiting longer may give up and send again — and the
    /// commit still lands.
    let commitDeadline: Duration
    let logger: Logger

    init(upstream: SignedUpstream, maxBodyBytes: Int, tracking: Tracking, idempotency: Idempotency, commitDeadline: Duration, logger: Logger) {
        self.upstream = upstream
        self.maxBodyBytes = maxBodyBytes
        self.tracking = tracking
        self.idempotency = idempotency
        self.commitDeadline = commitDeadline
        self.logger = logger
    }

    /// One request on its way to SENS, and what must be kept of its answer.
    private struct Send: Sendable {
        var request: UpstreamRequest
        var body: ByteBuffer
        var record: RequestRecord
        var tracked: Tracking.Send?
    }

    func respond(to exchange: Exchange) throws(GatewayError) -> Reply {
        // Decided before the body is read: a caller refused gets its 401 at once.
        try exchange.record.caller?.authorize(Operation(passthrough: exchange.target, method: exchange.method))
        let tracked = self.tracking.send(exchange)
        let key = try self.idempotency.key(exchange)
        // The body counts against the budget until SENS has answered (curl sends from the same buffer).
        return .readBody(limit: self.maxBodyBytes, heldUntilAnswered: true) { body in
            let record = exchange.record
            record.bytesIn = body.readableBytes
            let send = Send(request: Self.upstreamRequest(exchange, body: body), body: body, record: record, tracked: tracked)
            guard let key else { return .later { responder in self.forward(send, claim: nil, responder: responder) } }
            let keyed = IdempotencyKey(
                caller: record.caller?.name ?? "anonymous", key: key,
                fingerprint: Idempotency.fingerprint(method: send.request.method, target: send.request.target, body: body))
            return .later { responder in
                Task {
                    let claim = await self.idempotency.claim(keyed)
                    // The record is the connection's: written on its loop (RequestRecord).
                    responder.onLoop {
                        switch claim {
                        case .failure(let error):
                            record.idempotency = "store_unavailable"
                            responder.answer(.failure(error))
                        case .success(.claimed(let claimed)):
                            record.idempotency = KeyClaim.claimed(claimed).metricLabel
                            self.forward(send, claim: claimed, responder: responder)
                        case .success(let used):
                            record.idempotency = used.metricLabel
                            responder.answer(used.answer ?? .failure(GatewayError(.idempotencyInProgress, "the key's send is in flight")))
                        }
                    }
                }
            }
        }
    }

    /// Sends to SENS; then commits what must be kept of the outcome, and answers.
    private func forward(_ send: Send, claim: ClaimedKey?, responder: Responder) {
        let record = send.record
        self.upstream.send(send.request, route: record.route, record: record, cancellation: nil) { sent in
            // Off the upstream client's one thread at once: what follows (the tracking record, the key's copy of the
            // answer) runs on the connection's loop, and the answer is then written without another hop.
            responder.onLoop { self.settle(send, sent: sent, claim: claim, responder: responder) }
        }
    }

    /// What SENS's answer leaves to keep: a key's outcome, a tracking record, both (one transaction) or nothing.
    private func settle(_ send: Send, sent: Result<UpstreamResponse, SENSCallFailure>, claim: ClaimedKey?, responder: Responder) {
        let record = send.record
        var answer = sent.mapError { GatewayError($0, method: send.request.method) }.flatMap(Self.answer)
        var tracking: TrackedRequest? = nil
        if let tracked = send.tracked, case .success(var accepted) = answer, accepted.status == .accepted {
            tracking = self.tracking.request(for: tracked, body: send.body, accepted: accepted, caller: record.caller?.name)
            accepted.headers.append((Tracking.answerHeader, tracking?.requestId ?? "failed"))
            answer = .success(accepted)
        }
        if let claim {
            let settlement: KeySettlement =
                switch Idempotency.settlement(of: sent, answer: answer) {
                case .answered(let stored, _): .answered(stored, tracking: tracking)
                case let other: other
                }
            self.commit(operation: "settle_key", answer: answer, tracked: tracking != nil, responder: responder) {
                (store) async throws(StoreError) in try await store.settleKey(claim, as: settlement, now: StoreTime.now)
            }
        } else if let tracking {
            self.commit(operation: "track", answer: answer, tracked: true, responder: responder) {
                (store) async throws(StoreError) in try await store.track(tracking)
            }
        } else {
            responder.answer(answer)
        }
    }

    /// Commits `write`, then answers: whichever comes first, the commit or ``commitDeadline``, answers, and the other
    /// finds it done. A tracked answer whose record was not committed in time says `X-Sensgate-Tracking: failed`.
    private func commit(
        operation: String, answer: Result<Answer, GatewayError>, tracked: Bool, responder: Responder,
        _ write: @escaping @Sendable (any DeliveryStore) async throws(StoreError) -> Void
    ) {
        guard let store = self.tracking.store ?? self.idempotency.store else { return responder.answer(answer) }
        // Answered (once), and the deadline's timer, cancelled when the commit comes first (a timer per send left
        // running would hold its answer until it fires).
        let state = Mutex<(answered: Bool, deadline: Scheduled<Void>?)>((false, nil))
        let logger = self.logger
        let finish: @Sendable (String?) -> Void = { failure in
            let first = state.withLock { state -> Bool in
                guard !state.answered else { return false }
                state.answered = true
                state.deadline?.cancel()
                return true
            }
            guard first else { return }
            guard let failure else { return responder.answer(answer) }
            // A tracked send's record, with or without a key's outcome in the same transaction.
            logger.error(
                tracked ? "a send to track was not recorded" : "a keyed send's outcome was not recorded",
                metadata: ["write": "\(operation)", "reason": "\(failure)"])
            guard tracked, case .success(var failed) = answer else { return responder.answer(answer) }
            failed.headers.removeAll { $0.0 == Tracking.answerHeader }
            failed.headers.append((Tracking.answerHeader, "failed"))
            responder.answer(.success(failed))
        }
        let metrics = self.tracking.metrics
        let deadline = self.commitDeadline
        let timer = responder.eventLoop.scheduleTask(in: .nanoseconds(deadline.nanoseconds)) {
            finish("not committed within \(deadline)")
        }
        state.withLock { state in state.deadline = timer }
        Task {
            do {
                try await write(store)
                finish(nil)
            } catch {
                metrics.recordStoreError(operation: operation)
                finish("\(error)")
            }
        }
    }

    /// What goes upstream for a caller's request: the same method, target and body, and the headers that may be
    /// forwarded plus the request id (the signature is added per attempt).
    static func upstreamRequest(_ exchange: Exchange, body: ByteBuffer) -> UpstreamRequest {
        let method = exchange.method
        var headers = ForwardedHeaders.select(from: exchange.head.headers)
        headers.append(("x-request-id", exchange.record.requestID))
        return UpstreamRequest(
            method: method, target: exchange.target, headers: headers, body: body.readableBytes > 0 || method == "POST" ? body : nil)
    }

    /// What goes back to the caller: SENS's status, body, content type and `Retry-After`, unchanged.
    static func answer(_ sent: UpstreamResponse) -> Result<Answer, GatewayError> {
        guard (200...599).contains(sent.status) else {
            return .failure(GatewayError(.upstreamMalformed, "SENS answered with an invalid status", upstreamStatus: sent.status))
        }
        return .success(
            Answer(
                status: HTTPResponseStatus(statusCode: sent.status), contentType: sent.contentType,
                retryAfterSeconds: sent.retryAfterSeconds, body: sent.body))
    }
}
