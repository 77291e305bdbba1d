import NIOHTTP1
import UpstreamClient

extension HTTPExchangeHandler {
    /// The state of one connection's current exchange (NIO's pipelining handler in front hands over one request at a
    /// time): whether its body is wanted, owed a `100 Continue`, still coming; whether its answer is written; whether
    /// the connection ends after it. Pure: the handler feeds it what it reads and writes and carries out the actions
    /// it returns.
    struct Exchanges {
        /// What the state machine needs of a request head.
        struct Head {
            var isOriginForm: Bool
            var isHTTP11: Bool
            var hostCount: Int
            var keepAlive: Bool
            /// `CONNECT`, which a gateway never serves.
            var isConnect: Bool
            /// `CONNECT` or `Upgrade`: after it the parser passes bytes through unframed.
            var opensTunnel: Bool
            var expectsContinue: Bool
            /// A body follows the head (`Content-Length` above 0, or `Transfer-Encoding`).
            var hasBody: Bool
        }

        struct HeadAction: Equatable {
            /// Refuse the request (`400 invalid_request`) without routing it.
            var rejection: RequestTarget.Rejection?
            /// The answer will say `Connection: close` and end the connection.
            var closesConnection: Bool
        }

        /// What follows a request's end or its answer.
        enum Next: Equatable {
            /// Nothing yet: the other of the two (the request's end, the answer) is still to come.
            case none
            /// The exchange is over and the connection waits for the next request (its idle timeout applies).
            case idle
            /// Close the connection once the answer is written.
            case close
        }

        /// The `Connection` header a final answer must carry.
        enum ConnectionHeader: Equatable {
            case none
            case close
            case keepAlive
        }

        /// What to do when the client half-closes or the parser refuses its input.
        enum Interruption: Equatable {
            /// Nothing now: the current answer is still to be written, and the connection closes after it.
            case none
            /// Close at once: no answer is owed.
            case close
            /// The request's body stops short: answer `400` (it is never forwarded), then close.
            case cutRequest
            /// Input the parser refused between requests: answer `400`, then close.
            case refuseInput
        }

        /// A request is being answered (its head was read, its exchange is not over).
        private(set) var isOpen = false
        private var requestEnded = false
        private var readingBody = false
        private var answerWritten = false
        private var expectsContinue = false
        private var continueSent = false
        private var keepAlive10 = false
        private var hasBody = false
        /// The connection ends after the current answer.
        private(set) var closeAfterAnswer = false

        mutating func receivedHead(_ head: Head) -> HeadAction {
            self.isOpen = true
            self.requestEnded = false
            self.readingBody = false
            self.answerWritten = false
            self.continueSent = false
            self.expectsContinue = head.expectsContinue && head.isHTTP11
            self.keepAlive10 = !head.isHTTP11 && head.keepAlive
            self.hasBody = head.hasBody
            var action = HeadAction(rejection: nil, closesConnection: false)
            if !head.isOriginForm || head.isConnect {
                action.rejection = .notOriginForm
            } else if head.isHTTP11 && head.hostCount != 1 {
                action.rejection = .host
            }
            if !head.keepAlive || head.opensTunnel {
                self.closeAfterAnswer = true
                action.closesConnection = true
            }
            return action
        }

        /// The route reads the body.
        /// - Returns: Whether to write `100 Continue` now (the client waits for it).
        mutating func bodyWanted() -> Bool {
            self.readingBody = !self.requestEnded
            guard self.expectsContinue, !self.continueSent, !self.requestEnded else { return false }
            self.continueSent = true
            return true
        }

        mutating func receivedEnd() -> Next {
            self.requestEnded = true
            self.readingBody = false
            return self.answerWritten ? self.finish() : .none
        }

        /// A final answer's head is about to be written.
        mutating func writingAnswer() -> ConnectionHeader {
            // An answer given before the client was told to send its body (a `401`, a `413`): the body may never
            // come, so the connection cannot carry another request.
            if self.expectsContinue && !self.continueSent && !self.requestEnded { self.closeAfterAnswer = true }
            // An answer given while a body is still coming (refused before it was read, over the limit, cut): reading
            // the rest just to discard it is not worth a connection, whatever its length.
            if self.hasBody && !self.requestEnded { self.closeAfterAnswer = true }
            if self.closeAfterAnswer { return .close }
            return self.keepAlive10 ? .keepAlive : .none
        }

        /// The answer's end is written.
        mutating func answerDone() -> Next {
            self.answerWritten = true
            self.readingBody = false
            if self.closeAfterAnswer { return .close }
            return self.requestEnded ? self.finish() : .none
        }

        /// The body of the current request is being read for its route.
        var isReadingBody: Bool { self.readingBody }

        /// No request is open: the connection waits for the next one.
        var isBetweenRequests: Bool { !self.isOpen }

        /// Graceful shutdown: between requests the connection closes (once its last answer is written); otherwise
        /// after the current answer, which says so.
        mutating func quiesce() -> Interruption {
            self.closeAfterAnswer = true
            guard self.isOpen else { return .close }
            return self.answerWritten ? .close : .none
        }

        mutating func inputClosed() -> Interruption {
            guard self.isOpen else { return .close }
            if self.readingBody { return .cutRequest }
            self.closeAfterAnswer = true
            return self.answerWritten ? .close : .none
        }

        mutating func parserFailed() -> Interruption {
            guard self.isOpen else { return .refuseInput }
            if self.readingBody { return .cutRequest }
            self.closeAfterAnswer = true
            return self.answerWritten ? .close : .none
        }

        /// The body stopped short and is answered `400`; the connection ends after it.
        mutating func cutRequest() {
            self.readingBody = false
            self.closeAfterAnswer = true
        }

        /// A parser error's answer is about to be written (no request is open).
        mutating func refusingInput() {
            self.isOpen = true
            self.requestEnded = true
            self.closeAfterAnswer = true
        }

        private mutating func finish() -> Next {
            self.isOpen = false
            return self.closeAfterAnswer ? .close : .idle
        }
    }
}

extension HTTPExchangeHandler.Exchanges.Head {
    init(_ head: HTTPRequestHead) {
        self.isOriginForm = head.uri.utf8.first == UInt8(ascii: "/")
        self.isHTTP11 = head.version == .http1_1
        self.keepAlive = head.isKeepAlive
        self.isConnect = head.method == .CONNECT
        // One pass over the headers, comparing names without lower-case copies.
        var hosts = 0
        var upgrade = false
        var expectsContinue = false
        var hasBody = false
        for (name, value) in head.headers {
            if name.equalsIgnoringASCIICase("content-length") {
                hasBody = hasBody || value != "0"
            } else if name.equalsIgnoringASCIICase("transfer-encoding") {
                hasBody = true
            } else if name.equalsIgnoringASCIICase("host") {
                hosts += 1
            } else if name.equalsIgnoringASCIICase("upgrade") {
                upgrade = true
            } else if name.equalsIgnoringASCIICase("expect") {
                expectsContinue = expectsContinue || value.equalsIgnoringASCIICase("100-continue")
            }
        }
        self.hostCount = hosts
        self.hasBody = hasBody
        self.opensTunnel = self.isConnect || upgrade
        self.expectsContinue = expectsContinue
    }
}
