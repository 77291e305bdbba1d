import NIOHTTP1

extension ExchangeGuardHandler {
    /// The state of one connection's exchanges: which answers are owed, whether a `100 Continue` is, and whether the
    /// connection ends after the last answer. Pure: the handler feeds it what it reads and writes and carries out the
    /// actions it returns.
    struct Exchanges {
        /// What the state machine needs of a request head.
        struct Head {
            var isOriginForm: Bool
            var isHTTP11: Bool
            var hostCount: Int
            var keepAlive: Bool
            /// `CONNECT` or `Upgrade`: after it the parser passes bytes through unframed.
            var opensTunnel: Bool
            /// `CONNECT`, which a gateway never serves.
            var isConnect: Bool
            var expectsContinue: Bool
            var contentLength: Int?
        }

        struct HeadAction: Equatable {
            /// Refuse the request (the router answers 400).
            var rejection: RequestTarget.Rejection?
            /// Pass the request on with `Connection: close`.
            var closesConnection: Bool
            /// Write `100 Continue` now.
            var sendContinue: Bool
        }

        enum EndAction: Equatable {
            case none
            /// Write `100 Continue` after this answer: the request waiting for it is next.
            case sendContinue
            /// Close the connection after this answer.
            case close
        }

        let maxBodyBytes: Int
        /// Requests read (their heads) whose answers are not yet written.
        private(set) var owed = 0
        /// The request whose head was read and whose body is still coming, and what it expects.
        private var reading: (expectsContinue: Bool, continueSent: Bool)? = nil
        /// A `100 Continue` waits for earlier answers.
        private var continuePending = false
        /// The connection ends after the last owed answer.
        private(set) var closing = false

        init(maxBodyBytes: Int) {
            self.maxBodyBytes = maxBodyBytes
        }

        mutating func receivedHead(_ head: Head) -> HeadAction {
            self.owed += 1
            var action = HeadAction(rejection: nil, closesConnection: false, sendContinue: false)
            if !head.isOriginForm || head.isConnect {
                action.rejection = .notOriginForm
            } else if head.isHTTP11 && head.hostCount != 1 {
                action.rejection = .host
            }
            if !head.keepAlive || head.opensTunnel {
                self.closing = true
                action.closesConnection = true
            }
            let wantsContinue =
                head.isHTTP11 && head.expectsContinue && action.rejection == nil && (head.contentLength ?? 0) <= self.maxBodyBytes
            self.reading = (expectsContinue: head.expectsContinue && head.isHTTP11, continueSent: false)
            if wantsContinue {
                if self.owed == 1 {
                    self.reading?.continueSent = true
                    action.sendContinue = true
                } else {
                    self.continuePending = true
                }
            }
            return action
        }

        mutating func receivedEnd() {
            self.reading = nil
            self.continuePending = false
        }

        /// A final answer's head is about to be written.
        /// - Returns: Whether it must say `Connection: close`.
        mutating func writingFinalHead() -> Bool {
            // The answer to the request still being read, given before its client was told to send the body: the
            // body may never come, so the connection cannot carry another request.
            if self.owed == 1, let reading = self.reading, reading.expectsContinue, !reading.continueSent {
                self.closing = true
                self.continuePending = false
            }
            return self.closing && self.owed == 1
        }

        /// An answer's end is about to be written.
        mutating func writingEnd() -> EndAction {
            self.owed = max(0, self.owed - 1)
            if self.closing && self.owed == 0 { return .close }
            if self.continuePending && self.owed == 1 && self.reading != nil {
                self.continuePending = false
                self.reading?.continueSent = true
                return .sendContinue
            }
            return .none
        }
    }
}

extension ExchangeGuardHandler.Exchanges.Head {
    init(_ head: HTTPRequestHead) {
        let headers = head.headers
        self.isOriginForm = head.uri.utf8.first == UInt8(ascii: "/")
        self.isHTTP11 = head.version == .http1_1
        self.hostCount = headers[canonicalForm: "host"].count
        self.keepAlive = head.isKeepAlive
        self.isConnect = head.method == .CONNECT
        self.opensTunnel = self.isConnect || headers.contains(name: "upgrade")
        self.expectsContinue = headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
        self.contentLength = headers.first(name: "content-length").flatMap { Int($0) }
    }
}
