import NIOHTTP1
import UpstreamClient

extension ExchangeGuardHandler {
    /// The state of one connection's exchanges: which answers are owed, whether a `100 Continue` is, which request
    /// the client timeout applies to, and whether the connection ends after the last answer. Pure: the handler feeds
    /// it what it reads and writes and carries out the actions it returns.
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
        }

        struct HeadAction: Equatable {
            /// Refuse the request (the router answers 400).
            var rejection: RequestTarget.Rejection?
            /// Pass the request on with `Connection: close`.
            var closesConnection: Bool
            /// Start the client timeout for this request's body: it is the one being answered next.
            var armTimer: Bool
        }

        enum EndAction: Equatable {
            case none
            /// The next request is now the current one and its body is still coming: start the client timeout, and
            /// write `100 Continue` if its route already asked for the body.
            case nextRequest(sendContinue: Bool)
            /// Close the connection once this answer is written.
            case close
        }

        /// Requests read (their heads) whose answers are not yet written.
        private(set) var owed = 0
        /// The request whose head was read and whose body is still coming, and what it expects.
        private var reading: (expectsContinue: Bool, continueSent: Bool, bodyWanted: Bool)? = nil
        /// The connection ends after the last owed answer.
        private(set) var closing = false
        /// For each owed answer, oldest first: whether its request was HTTP/1.0 with keep-alive, whose answer must say
        /// `Connection: keep-alive` for the client to keep the connection.
        private var keepAlive10: [Bool] = []

        /// The `Connection` header a final answer must carry.
        enum ConnectionHeader: Equatable {
            case none
            case close
            case keepAlive
        }

        mutating func receivedHead(_ head: Head) -> HeadAction {
            self.owed += 1
            self.keepAlive10.append(!head.isHTTP11 && head.keepAlive)
            var action = HeadAction(rejection: nil, closesConnection: false, armTimer: self.owed == 1)
            if !head.isOriginForm || head.isConnect {
                action.rejection = .notOriginForm
            } else if head.isHTTP11 && head.hostCount != 1 {
                action.rejection = .host
            }
            if !head.keepAlive || head.opensTunnel {
                self.closing = true
                action.closesConnection = true
            }
            self.reading = (expectsContinue: head.expectsContinue && head.isHTTP11, continueSent: false, bodyWanted: false)
            return action
        }

        mutating func receivedEnd() {
            self.reading = nil
        }

        /// The route is about to read the body.
        /// - Returns: Whether to write `100 Continue` now: the client waits for it, and every earlier answer is out.
        mutating func bodyWanted() -> Bool {
            guard var reading = self.reading, reading.expectsContinue, !reading.continueSent else { return false }
            reading.bodyWanted = true
            if self.owed == 1 { reading.continueSent = true }
            self.reading = reading
            return reading.continueSent
        }

        /// A final answer's head is about to be written.
        /// - Parameter saysClose: Whether the answer itself says `Connection: close` (Hummingbird's `400` to a
        ///   request the parser rejected).
        /// - Returns: The `Connection` header it must carry.
        mutating func writingFinalHead(saysClose: Bool) -> ConnectionHeader {
            if saysClose { self.closing = true }
            // The answer to the request still being read, given before its client was told to send the body (a
            // `401`, a `413`): the body may never come, so the connection cannot carry another request.
            if self.owed == 1, let reading = self.reading, reading.expectsContinue, !reading.continueSent {
                self.closing = true
            }
            let keepAlive10 = self.keepAlive10.isEmpty ? false : self.keepAlive10.removeFirst()
            if self.closing && self.owed == 1 { return .close }
            return keepAlive10 ? .keepAlive : .none
        }

        /// An answer's end is about to be written.
        mutating func writingEnd() -> EndAction {
            self.owed = max(0, self.owed - 1)
            if self.closing && self.owed == 0 { return .close }
            guard self.owed == 1, var reading = self.reading else { return .none }
            let sendContinue = reading.bodyWanted && !reading.continueSent
            if sendContinue { reading.continueSent = true }
            self.reading = reading
            return .nextRequest(sendContinue: sendContinue)
        }
    }
}

extension ExchangeGuardHandler.Exchanges.Head {
    init(_ head: HTTPRequestHead) {
        self.isOriginForm = head.uri.utf8.first == UInt8(ascii: "/")
        self.isHTTP11 = head.version == .http1_1
        self.keepAlive = head.isKeepAlive
        self.isConnect = head.method == .CONNECT
        // One pass over the headers, comparing names without lower-case copies.
        var hosts = 0
        var upgrade = false
        var expectsContinue = false
        for (name, value) in head.headers {
            if name.equalsIgnoringASCIICase("host") {
                hosts += 1
            } else if name.equalsIgnoringASCIICase("upgrade") {
                upgrade = true
            } else if name.equalsIgnoringASCIICase("expect") {
                expectsContinue = expectsContinue || value.equalsIgnoringASCIICase("100-continue")
            }
        }
        self.hostCount = hosts
        self.opensTunnel = self.isConnect || upgrade
        self.expectsContinue = expectsContinue
    }
}
