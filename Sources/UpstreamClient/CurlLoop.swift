internal import CCurl
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The thread that owns the curl multi handle.
///
/// Invariant (hence `@unchecked Sendable`): `multi` and every easy handle are touched only on the loop thread; other
/// threads reach the loop only through `commands` (a mutex-guarded queue) plus `curl_multi_wakeup`, the one curl
/// call that is safe from any thread.
final class CurlLoop: @unchecked Sendable {
    enum Command {
        case start(Transfer)
        case cancel(Transfer)
        case shutdown
    }

    private struct Shared {
        var commands: [Command] = []
        /// The loop thread is in, or about to enter, `curl_multi_poll`: only then does a new command need a wakeup.
        var polling = false
        var accepting = true
        var stopped = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let multi: UnsafeMutableRawPointer
    private let shared = Mutex(Shared())
    private let origin: Origin
    private let configuration: UpstreamConfiguration
    private let logger: Logger
    /// What every easy handle is set up with, once.
    private let fixed: EasyHandle.Fixed

    // Loop-thread state.
    private let responseBudget: ResponseBudget
    private var activeCount = 0
    private var draining = false
    private var spareHandles: [EasyHandle] = []
    /// Passes of `curl_multi_perform` so far: a transfer added in the current pass has not been looked at by curl, so
    /// its handle's transfer info is still the previous transfer's.
    private var pass: UInt64 = 0
    /// The last `Content-Type` curl reported and its string: SENS answers with one or two, so most answers share it
    /// instead of each allocating a copy.
    private var lastContentType: (bytes: [CChar], string: String) = ([], "")

    /// curl_global_init is not thread-safe; a static `let` runs it once, under Swift's lazy-global lock.
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    init(origin: Origin, configuration: UpstreamConfiguration, logger: Logger) throws(UpstreamError) {
        guard Self.globalInit == CURLE_OK, let multi = curl_multi_init() else {
            throw UpstreamError(.invalidRequest, "libcurl failed to initialize")
        }
        self.multi = multi
        self.origin = origin
        self.configuration = configuration
        self.logger = logger
        let proxyVariables: [String] = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"]
        self.fixed = EasyHandle.Fixed(
            origin: origin.description, allowedProtocols: origin.scheme, noProxy: proxyVariables.allSatisfy { getenv($0) == nil },
            multiplexes: origin.scheme == "https", caFile: configuration.caFile, write: curlWriteCallback, read: curlReadCallback,
            seek: curlSeekCallback, started: curlStartedCallback)
        self.responseBudget = ResponseBudget(capacity: configuration.maxBufferedResponseBytes)
        _ = sg_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxIdleConnections)
        _ = sg_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))

        let thread = LoopThread { [self] in self.runLoop() }
        thread.start()
    }

    deinit {
        curl_multi_cleanup(self.multi)
    }

    /// Hands a request to the loop and waits for its result; cancellation of the calling task cancels the transfer.
    func execute(_ request: UpstreamRequest) async -> Result<UpstreamResponse, UpstreamError> {
        let transfer = Transfer(request: request, maxResponseBytes: self.configuration.maxResponseBytes, budget: self.responseBudget)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamError>, Never>) in
                self.start(transfer) { continuation.resume(returning: $0) }
            }
        } onCancel: {
            self.cancel(transfer)
        }
    }

    /// Hands a request to the loop; `completion` runs once, on the loop thread, with the result.
    /// - Returns: The transfer, for ``cancel(_:)``.
    func execute(_ request: UpstreamRequest, completion: @escaping Transfer.Completion) -> Transfer {
        let transfer = Transfer(request: request, maxResponseBytes: self.configuration.maxResponseBytes, budget: self.responseBudget)
        self.start(transfer, completion: completion)
        return transfer
    }

    /// Stops a transfer early; its completion runs with ``UpstreamError/Kind/cancelled`` unless it already ran.
    func cancel(_ transfer: Transfer) {
        if transfer.requestCancel() {
            _ = self.submit(.cancel(transfer))
        }
    }

    private func start(_ transfer: Transfer, completion: @escaping Transfer.Completion) {
        guard transfer.arm(completion) else { return }
        if !self.submit(.start(transfer)) {
            transfer.finish(.failure(UpstreamError(.shuttingDown, "the upstream client is shutting down")))
        }
    }

    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyStopped = self.shared.withLock { shared -> Bool in
                if shared.stopped { return true }
                shared.stopWaiters.append(continuation)
                if shared.accepting {
                    shared.accepting = false
                    shared.commands.append(.shutdown)
                }
                return false
            }
            if alreadyStopped {
                continuation.resume()
            } else {
                curl_multi_wakeup(self.multi)
            }
        }
    }

    var isAccepting: Bool { self.shared.withLock { $0.accepting } }

    /// Queues a command; returns false when the loop no longer takes new transfers.
    private func submit(_ command: Command) -> Bool {
        let (accepted, wake) = self.shared.withLock { shared -> (Bool, Bool) in
            if case .start = command, !shared.accepting { return (false, false) }
            if shared.stopped { return (false, false) }
            // Only a command that finds the loop asleep (or about to sleep) wakes it, once: a loop that is awake
            // looks at the queue again before it sleeps. Under load this saves a write and a read of curl's wakeup
            // socket per request.
            shared.commands.append(command)
            let wake = shared.polling
            shared.polling = false
            return (true, wake)
        }
        if wake { curl_multi_wakeup(self.multi) }
        return accepted
    }

    // MARK: Loop thread

    private func runLoop() {
        var commands: [Command] = []
        var stillRunning: Int32 = 0
        while true {
            self.shared.withLock { shared in
                shared.polling = false
                swap(&commands, &shared.commands)
            }
            for command in commands { self.apply(command) }
            commands.removeAll(keepingCapacity: true)

            if self.draining && self.activeCount == 0 { break }

            curl_multi_perform(self.multi, &stillRunning)
            self.pass &+= 1
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(self.multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                self.complete(easy: easy, code: sg_msg_result(message))
            }
            if self.draining && self.activeCount == 0 { break }
            // Sleeps until a socket is ready, curl's own timer fires, or another thread calls curl_multi_wakeup —
            // unless commands came in meanwhile. A wakeup sent after `polling` is set ends a poll not yet begun.
            let sleeps = self.shared.withLock { shared -> Bool in
                guard shared.commands.isEmpty else { return false }
                shared.polling = true
                return true
            }
            if sleeps { curl_multi_poll(self.multi, nil, 0, 1000, nil) }
        }
        for handle in self.spareHandles { handle.free() }
        self.spareHandles.removeAll()
        let waiters = self.shared.withLock { shared -> [CheckedContinuation<Void, Never>] in
            shared.stopped = true
            defer { shared.stopWaiters.removeAll() }
            return shared.stopWaiters
        }
        self.logger.debug("upstream client stopped")
        for waiter in waiters { waiter.resume() }
    }

    private func apply(_ command: Command) {
        switch command {
        case .start(let transfer):
            if transfer.cancelRequested {
                transfer.finish(.failure(UpstreamError(.cancelled, "cancelled before it was sent")))
                return
            }
            self.start(transfer)
        case .cancel(let transfer):
            guard let easy = transfer.easy else {
                // Not started yet (its start command is behind this one) or already finished: the flag covers both.
                return
            }
            // Not yet looked at by curl: nothing was sent (and the handle's transfer info is still the last transfer's).
            let stage = transfer.addedInPass == self.pass ? .notConnected : Self.stage(of: easy)
            self.finish(transfer, easy: easy, with: .failure(UpstreamError(.cancelled, "cancelled by the caller", stage: stage)), clean: false)
        case .shutdown:
            self.draining = true
        }
    }

    private func start(_ transfer: Transfer) {
        let handle: EasyHandle
        if let spare = self.spareHandles.popLast() {
            handle = spare
        } else if let fresh = EasyHandle(self.fixed) {
            handle = fresh
        } else {
            transfer.finish(.failure(UpstreamError(.invalidRequest, "libcurl could not allocate a handle or refused its options")))
            return
        }
        let easy = handle.easy
        transfer.handle = handle
        let request = transfer.request
        let totalTimeout = request.timeout ?? self.configuration.requestTimeout
        let totalMilliseconds = max(1, Self.milliseconds(totalTimeout))
        let connectMilliseconds = max(1, min(totalMilliseconds, Self.milliseconds(self.configuration.connectTimeout)))

        // Every option that differs between transfers is set here, each time (the handle is not reset: EasyHandle).
        // The request-target goes on the wire exactly as given and signed (CURLOPT_REQUEST_TARGET): curl's URL parser
        // rewrites percent-escapes (7.88 lower-cases their hex digits, 8.20 upper-cases them), which would break the
        // signature over the caller's target.
        var ok = self.setTarget(request.target, on: easy)
        handle.errorBuffer[0] = 0
        ok = ok && sg_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, totalMilliseconds) == CURLE_OK
        ok = ok && sg_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, connectMilliseconds) == CURLE_OK

        // A spare handle still points at its last transfer (no curl call reads that while it is detached); these are
        // set here, before it is added again, rather than cleared on every release.
        let context = Unmanaged.passRetained(transfer).toOpaque()
        _ = sg_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context)
        _ = sg_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = sg_easy_setopt_pointer(easy, CURLOPT_READDATA, context)
        _ = sg_easy_setopt_pointer(easy, CURLOPT_SEEKDATA, context)
        _ = sg_easy_setopt_pointer(easy, CURLOPT_PREREQDATA, context)

        let method = request.method
        let sendsBody = method == "POST" || (request.body?.readableBytes ?? 0) > 0
        // An empty value tells curl not to add its own header: no `Expect: 100-continue` round trip, and no default
        // form content type or `Accept` that the caller did not send (curl adds a content type only to a body).
        var sendsContentType = !sendsBody
        var sendsAccept = false
        for (name, _) in request.headers {
            sendsContentType = sendsContentType || name.equalsIgnoringASCIICase("content-type")
            sendsAccept = sendsAccept || name.equalsIgnoringASCIICase("accept")
        }
        let extra: [StaticString] =
            switch (sendsContentType, sendsAccept) {
            case (true, true): ["Expect:"]
            case (true, false): ["Expect:", "Accept:"]
            case (false, true): ["Expect:", "Content-Type:"]
            case (false, false): ["Expect:", "Content-Type:", "Accept:"]
            }
        ok = ok && sg_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, handle.headerList(request.headers, extra: extra)) == CURLE_OK

        if sendsBody {
            transfer.requestBody = request.body ?? ByteBuffer()
            transfer.bodyStart = transfer.requestBody.readerIndex
            // curl sends a request again on a fresh connection when a reused one turned out dead before a byte of
            // answer came back, or an HTTP/2 stream was refused; to do that with a body it must rewind it. An upstream
            // that read a send and then dropped the connection looks the same as one that closed it idle, so only
            // idempotent requests may be rewound: a send whose body left is never sent twice (its failure is then an
            // unknown outcome, not a second SMS).
            transfer.rewindable = UpstreamRequest.isRepeatable(method: method)
            ok = ok && sg_easy_setopt_long(easy, CURLOPT_POST, 1) == CURLE_OK
            ok = ok && sg_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(transfer.requestBody.readableBytes)) == CURLE_OK
        } else if method == "HEAD" {
            ok = ok && sg_easy_setopt_long(easy, CURLOPT_NOBODY, 1) == CURLE_OK
        } else {
            ok = ok && sg_easy_setopt_long(easy, CURLOPT_HTTPGET, 1) == CURLE_OK
        }
        // Set or cleared each time: the method POST, GET or HEAD implies, or another one.
        let implied = sendsBody ? method == "POST" : method == "GET" || method == "HEAD"
        if implied {
            ok = ok && sg_easy_setopt_pointer(easy, CURLOPT_CUSTOMREQUEST, nil) == CURLE_OK
        } else {
            ok = ok && sg_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK
        }

        transfer.easy = easy
        transfer.addedInPass = self.pass
        guard ok, curl_multi_add_handle(self.multi, easy) == CURLM_OK else {
            transfer.easy = nil
            self.release(easy: easy, transfer: transfer, context: context, attached: false, clean: false)
            transfer.finish(.failure(UpstreamError(.invalidRequest, "libcurl refused the request options")))
            return
        }
        self.activeCount += 1
    }

    private func complete(easy: UnsafeMutableRawPointer, code: CURLcode) {
        var pointer: UnsafeMutableRawPointer? = nil
        _ = sg_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &pointer)
        guard let pointer else { return }
        let transfer = Unmanaged<Transfer>.fromOpaque(pointer).takeUnretainedValue()
        let result: Result<UpstreamResponse, UpstreamError>
        if code == CURLE_OK {
            var status = 0
            _ = sg_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            var contentType: UnsafeMutablePointer<CChar>? = nil
            _ = sg_easy_getinfo_string(easy, CURLINFO_CONTENT_TYPE, &contentType)
            var retryAfter: curl_off_t = 0
            _ = sg_easy_getinfo_off(easy, CURLINFO_RETRY_AFTER, &retryAfter)
            result = .success(
                UpstreamResponse(
                    status: status,
                    contentType: contentType.map(self.contentType),
                    retryAfterSeconds: retryAfter > 0 ? Int(retryAfter) : nil,
                    body: transfer.responseBody
                )
            )
        } else {
            let curlText = transfer.handle.map { String(cString: $0.errorBuffer) } ?? ""
            let text = curlText.isEmpty ? String(cString: curl_easy_strerror(code)) : curlText
            result = .failure(
                Self.error(
                    for: code, stage: Self.stage(of: easy), tooLarge: transfer.responseTooLarge, overBudget: transfer.responseOverBudget,
                    text: text))
        }
        // A transfer curl sent more than once retried a dead connection (EasyHandle: the handle is then reset).
        self.finish(transfer, easy: easy, with: result, clean: code == CURLE_OK && transfer.requestsStarted <= 1)
    }

    /// The content type curl reported, as a string: the last one's when the bytes are the same.
    private func contentType(_ reported: UnsafeMutablePointer<CChar>) -> String {
        let length = strlen(reported)
        let last = self.lastContentType.bytes
        if last.count == length, last.withUnsafeBufferPointer({ $0.baseAddress.map { memcmp($0, reported, length) == 0 } ?? (length == 0) }) {
            return self.lastContentType.string
        }
        let string = String(cString: reported)
        self.lastContentType = (Array(UnsafeBufferPointer(start: reported, count: length)), string)
        return string
    }

    /// - Parameter clean: The transfer succeeded on a connection it found open (see ``release(easy:transfer:context:attached:clean:)``).
    private func finish(_ transfer: Transfer, easy: UnsafeMutableRawPointer, with result: Result<UpstreamResponse, UpstreamError>, clean: Bool) {
        transfer.easy = nil
        self.release(easy: easy, transfer: transfer, context: Unmanaged.passUnretained(transfer).toOpaque(), attached: true, clean: clean)
        self.activeCount -= 1
        transfer.finish(result)
    }

    /// Detaches the easy handle and drops the reference curl held, exactly once per start.
    /// - Parameter clean: The handle may go back as it is; otherwise it is reset first (EasyHandle says why).
    private func release(easy: UnsafeMutableRawPointer, transfer: Transfer, context: UnsafeMutableRawPointer, attached: Bool, clean: Bool) {
        if attached { curl_multi_remove_handle(self.multi, easy) }
        Unmanaged<Transfer>.fromOpaque(context).release()
        // The body now belongs to the caller; the budget counts what curl is still filling.
        transfer.budget.held -= transfer.heldBytes
        transfer.heldBytes = 0
        guard let handle = transfer.handle else { return }
        transfer.handle = nil
        // Keep a few handles for the next requests, set up as they are (EasyHandle: the next transfer sets every
        // option that differs). Connections live in the multi handle, not here.
        handle.uses += 1
        if !clean || handle.uses >= EasyHandle.usesBeforeReset {
            guard handle.reset(self.fixed) else { return handle.free() }
        }
        if self.spareHandles.count < 64 {
            self.spareHandles.append(handle)
        } else {
            handle.free()
        }
    }

    /// Sets the handle's URL path and query from a request-target (`/path?query`), as they go on the wire (curl copies
    /// it; a native string's own NUL-terminated bytes are lent, not copied).
    private func setTarget(_ target: String, on easy: UnsafeMutableRawPointer) -> Bool {
        target.withCString { sg_easy_setopt_string(easy, CURLOPT_REQUEST_TARGET, $0) } == CURLE_OK
    }

    /// How far a transfer got, from curl's own account: request bytes sent, then a connection made.
    static func stage(of easy: UnsafeMutableRawPointer) -> WireStage {
        var requestBytes = 0
        _ = sg_easy_getinfo_long(easy, CURLINFO_REQUEST_SIZE, &requestBytes)
        var uploaded: curl_off_t = 0
        _ = sg_easy_getinfo_off(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded)
        if requestBytes > 0 || uploaded > 0 { return .requestSent }
        var connectTime: curl_off_t = 0
        _ = sg_easy_getinfo_off(easy, CURLINFO_CONNECT_TIME_T, &connectTime)
        return connectTime > 0 ? .connected : .notConnected
    }

    /// The failure of a transfer, by how far it got and what curl said.
    static func error(for code: CURLcode, stage: WireStage, tooLarge: Bool, overBudget: Bool = false, text: String) -> UpstreamError {
        if tooLarge { return UpstreamError(.responseTooLarge, "response body over the size limit", stage: .requestSent) }
        if overBudget {
            return UpstreamError(.overloaded, "the gateway holds as many answers as it may (max-buffered-response-bytes)", stage: .requestSent)
        }
        switch code {
        case CURLE_WEIRD_SERVER_REPLY, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_CONTENT_ENCODING:
            return UpstreamError(.invalidResponse, text, stage: .requestSent)
        case CURLE_ABORTED_BY_CALLBACK:
            return UpstreamError(.cancelled, text, stage: stage)
        case CURLE_OUT_OF_MEMORY where stage == .requestSent:
            // What curl reports for an answer it will not hold (a header over its 100 KB limit): the request went out.
            return UpstreamError(.invalidResponse, text, stage: .requestSent)
        case CURLE_URL_MALFORMAT, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_OUT_OF_MEMORY:
            return UpstreamError(.invalidRequest, text, stage: stage)
        default:
            break
        }
        // Whatever curl calls it — refused, DNS, connect timeout, TLS handshake or certificate failure, a send that
        // failed before a byte left — nothing was sent: the upstream is not reachable, and any method may be retried.
        guard stage == .requestSent else { return UpstreamError(.connectFailed, text, stage: stage) }
        if code == CURLE_OPERATION_TIMEDOUT { return UpstreamError(.timeout, text, stage: stage) }
        // Reset, closed mid-answer (CURLE_PARTIAL_FILE), empty reply, TLS failure after the request: it may have arrived.
        return UpstreamError(.unreachable, text, stage: stage)
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

/// One request's state. Fields marked "loop thread" are only touched there; `state` is guarded by its mutex.
final class Transfer: @unchecked Sendable {
    /// Receives the result exactly once.
    typealias Completion = @Sendable (Result<UpstreamResponse, UpstreamError>) -> Void

    enum State {
        case idle
        case waiting(Completion)
        case cancelledEarly
        case finished
    }

    let request: UpstreamRequest
    let maxResponseBytes: Int
    /// Shared by every transfer of the loop; touched on the loop thread only.
    let budget: ResponseBudget
    private let state = Mutex(State.idle)
    private let cancelFlag = Atomic<Bool>(false)

    // Loop thread.
    var easy: UnsafeMutableRawPointer?
    var handle: EasyHandle?
    /// The loop's pass (``CurlLoop``'s count of `curl_multi_perform` calls) when the handle was added.
    var addedInPass: UInt64 = 0
    /// Requests curl started for this transfer (its `PREREQFUNCTION`): more than one means it retried.
    var requestsStarted = 0
    var requestBody = ByteBuffer()
    /// Where the body starts in ``requestBody``, for curl to rewind to.
    var bodyStart = 0
    /// Whether curl may send the body again (idempotent methods only).
    var rewindable = false
    var responseBody = ByteBuffer()
    /// Bytes of ``responseBody`` counted against ``budget``.
    var heldBytes = 0
    var responseTooLarge = false
    /// Loop thread: the answer did not fit in what all answers together may hold.
    var responseOverBudget = false

    init(request: UpstreamRequest, maxResponseBytes: Int, budget: ResponseBudget) {
        self.request = request
        self.maxResponseBytes = maxResponseBytes
        self.budget = budget
    }

    var cancelRequested: Bool { self.cancelFlag.load(ordering: .acquiring) }

    /// Stores the completion; returns false (having called it) when the caller cancelled first.
    func arm(_ completion: @escaping Completion) -> Bool {
        let cancelledEarly = self.state.withLock { state -> Bool in
            if case .cancelledEarly = state { return true }
            state = .waiting(completion)
            return false
        }
        if cancelledEarly {
            completion(.failure(UpstreamError(.cancelled, "cancelled before it was sent")))
            return false
        }
        return true
    }

    /// Marks the transfer cancelled; returns true when the loop must be told (the transfer was handed to it).
    func requestCancel() -> Bool {
        self.cancelFlag.store(true, ordering: .releasing)
        return self.state.withLock { state -> Bool in
            switch state {
            case .idle:
                state = .cancelledEarly
                return false
            case .waiting:
                return true
            case .cancelledEarly, .finished:
                return false
            }
        }
    }

    /// Hands the result to the caller exactly once; later calls do nothing.
    func finish(_ result: Result<UpstreamResponse, UpstreamError>) {
        let completion = self.state.withLock { state -> Completion? in
            guard case .waiting(let completion) = state else { return nil }
            state = .finished
            return completion
        }
        completion?(result)
    }
}

/// Body bytes from curl: append to the transfer's buffer, or stop the transfer once the cap is passed.
private let curlWriteCallback: sg_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    // Anything but `length` makes curl abort with CURLE_WRITE_ERROR.
    if transfer.responseBody.readableBytes + length > transfer.maxResponseBytes {
        transfer.responseTooLarge = true
        return 0
    }
    if transfer.budget.held + length > transfer.budget.capacity {
        transfer.responseOverBudget = true
        return 0
    }
    transfer.budget.held += length
    transfer.heldBytes += length
    transfer.responseBody.writeBytes(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

/// Request body bytes for curl, copied out of the transfer's buffer.
private let curlReadCallback: sg_data_callback = { destination, size, count, context in
    guard let destination, let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let length = min(size * count, transfer.requestBody.readableBytes)
    guard length > 0 else { return 0 }
    transfer.requestBody.withUnsafeReadableBytes { source in
        if let base = source.baseAddress {
            UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: length)
        }
    }
    transfer.requestBody.moveReaderIndex(forwardBy: length)
    return length
}

/// curl is about to send a request for the transfer: the first, or a retry on another connection.
private let curlStartedCallback: sg_prereq_callback = { context, _, _, _, _ in
    if let context { Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().requestsStarted += 1 }
    return Int32(CURL_PREREQFUNC_OK)
}

/// curl asks to send the body again from `offset` (a fresh connection after a dead reused one, or a refused HTTP/2
/// stream): the body is still whole in the transfer's buffer, but only an idempotent request is sent twice.
private let curlSeekCallback: sg_seek_callback = { context, offset, origin in
    guard let context, origin == SEEK_SET else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    guard transfer.rewindable else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    let target = transfer.bodyStart + Int(offset)
    guard offset >= 0, target <= transfer.requestBody.writerIndex else { return Int32(CURL_SEEKFUNC_FAIL) }
    transfer.requestBody.moveReaderIndex(to: target)
    return Int32(CURL_SEEKFUNC_OK)
}

/// Response bytes held by the transfers in flight, against a cap (``UpstreamConfiguration/maxBufferedResponseBytes``).
///
/// Invariant (hence `@unchecked Sendable`): read and written on the loop thread only (curl's write callback, and
/// the release of a finished transfer).
final class ResponseBudget: @unchecked Sendable {
    let capacity: Int
    var held = 0

    init(capacity: Int) {
        self.capacity = capacity
    }
}

/// A plain pthread, so the blocking `curl_multi_poll` never occupies a Swift concurrency thread.
private final class LoopThread: @unchecked Sendable {
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
    }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            LoopThread.nameCurrentThread()
            Unmanaged<LoopThread>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, box)
        precondition(rc == 0, "could not start the upstream client thread")
        pthread_detach(thread)
    }

    /// Threads inherit their creator's name (a Dispatch worker's); this one is named for `top -H` and profiles.
    /// Glibc's `pthread_setname_np` is not visible to Swift, so the name goes through procfs; failure is harmless.
    private static func nameCurrentThread() {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let name: StaticString = "sensgate-curl"
        _ = write(fd, name.utf8Start, name.utf8CodeUnitCount)
        close(fd)
    }
}
