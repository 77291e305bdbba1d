import Foundation
@testable import GatewayServer
import NIOCore
import NIOPosix
import SENSMock
import Synchronization
import Testing

/// HTTP/1.1 as a client expects it (PRODUCT.md §4.6), over raw sockets: pipelining, a rejected request after one SENS
/// received, half-close, a client that vanishes mid-body, `Expect: 100-continue`, HTTP/1.0, `Host`, tunnels.
@Suite("HTTP/1.1 exchanges")
struct HTTPExchangeTests {
    static let sms = Fixtures.smsServiceID
    static let seedTarget = "/sms/v2/services/\(Fixtures.smsServiceID)/messages/\(Fixtures.smsSeedMessageID)"
    static let sendTarget = "/sms/v2/services/\(Fixtures.smsServiceID)/messages"
    static let sendBody = #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01012345678"}]}"#

    static func send(id: String, body: String = sendBody) -> String {
        "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nX-Request-Id: \(id)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test("100 pipelined requests, sends and lookups, written at once are all answered, in order")
    func pipelinedHundred() async throws {
        try await TestGateway.run { gw in
            var bytes = ""
            for index in 0..<100 {
                bytes += index % 2 == 0
                    ? Self.send(id: "pipe-\(index)")
                    : "GET \(Self.seedTarget) HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-\(index)\r\n\r\n"
            }
            let responses = try await RawHTTP.exchangeMany(port: gw.port, bytes, count: 100, timeout: .seconds(60))
            #expect(responses.count == 100)
            #expect(responses.map { $0.header("x-request-id") ?? "" } == (0..<100).map { "pipe-\($0)" })
            #expect(responses.enumerated().allSatisfy { index, response in response.status == (index % 2 == 0 ? 202 : 200) })
            #expect(gw.mock.receivedRequests.count == 100)
        }
    }

    @Test(
        "a request the parser rejects is answered only after the send before it",
        arguments: [
            "GARBAGE\r\n\r\n",
            "POST /sms/v2/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 1_048_576))\r\n\r\n",
            "X",  // the byte after a body one byte longer than its Content-Length
        ])
    func rejectedAfterSend(_ rejected: String) async throws {
        try await TestGateway.run { gw in
            let responses = try await RawHTTP.exchangeMany(
                port: gw.port, Self.send(id: "first-send") + rejected, count: 2, untilClosed: true, timeout: .seconds(20))
            #expect(responses.count == 2)
            #expect(responses.first?.status == 202)
            #expect(responses.first?.header("x-request-id") == "first-send")
            #expect(responses.first?.text.contains("requestId") == true)
            // The contract's error, with its own request id, counted and logged (not Hummingbird's bare 400).
            let rejectedAnswer = try #require(responses.last)
            #expect(rejectedAnswer.status == 400)
            #expect(try rejectedAnswer.error().code == "invalid_request")
            let id = try #require(rejectedAnswer.header("x-request-id"))
            #expect(try rejectedAnswer.error().requestId == id)
            #expect(rejectedAnswer.header("connection") == "close")
            try await waitFor { gw.logs.all.contains { $0.contains(id) && $0.contains(#""status":400"#) } }
            #expect(gw.mock.receivedRequests.count == 1)
        }
    }

    @Test("a client that half-closes after its requests still gets every answer")
    func halfClose() async throws {
        try await TestGateway.run { gw in
            let bytes = Self.send(id: "half-1") + "GET \(Self.seedTarget) HTTP/1.1\r\nHost: x\r\nX-Request-Id: half-2\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, bytes, count: 2, halfClose: true, timeout: .seconds(20))
            #expect(responses.map(\.status) == [202, 200])
            #expect(responses.map { $0.header("x-request-id") } == ["half-1", "half-2"])
            let logged = gw.logs.all.filter { $0.contains(#""msg":"request""#) && $0.contains("half-") }
            #expect(logged.count == 2)
        }
    }

    @Test("a client that vanishes mid-body sends nothing upstream, leaves no count behind and is logged")
    func vanishedMidBody() async throws {
        try await TestGateway.run { gw in
            let head = "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nX-Request-Id: vanished-client\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
            try await RawHTTP.sendAndClose(port: gw.port, head + String(Self.sendBody.prefix(20)))
            try await waitFor { gw.logs.all.contains { $0.contains("vanished-client") && $0.contains(#""msg":"request""#) } }
            let line = try #require(gw.logs.all.first { $0.contains("vanished-client") && $0.contains(#""msg":"request""#) })
            #expect(line.contains(#""status":400"#))
            #expect(line.contains(#""error":"invalid_request""#))
            let metrics = try await gw.send("GET", "/metrics").text
            // The scrape itself is the one request in flight.
            #expect(metrics.contains("sensgate_http_requests_in_flight 1"))
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("a caller that goes away while SENS is slow leaves nothing behind")
    func callerGoneWhileSENSIsSlow() async throws {
        try await TestGateway.run { gw in
            let slow = "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-600 HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-caller\r\n\r\n"
            await #expect(throws: RawHTTP.RawHTTPError.self) { try await RawHTTP.exchange(port: gw.port, slow, timeout: .milliseconds(200)) }
            try await waitFor { gw.logs.all.contains { $0.contains("gone-caller") && $0.contains(#""msg":"request""#) } }
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains("sensgate_http_requests_in_flight 1"))
            #expect(try await gw.send("GET", Self.seedTarget).status == 200)
        }
    }

    @Test("Expect: 100-continue gets 100 Continue, then the answer")
    func expectContinue() async throws {
        try await TestGateway.run { gw in
            let connection = try await RawConnection(port: gw.port)
            let body = Self.sendBody
            try await connection.write(
                "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
            let interim = try await connection.readHead()
            #expect(interim.hasPrefix("HTTP/1.1 100"))
            #expect(gw.mock.receivedRequests.isEmpty)
            try await connection.write(body)
            let final = try await connection.readResponse()
            #expect(final.status == 202)
            // The connection stays usable.
            try await connection.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await connection.readResponse().status == 200)
            try await connection.close()
        }
    }

    @Test("Expect: 100-continue from a caller without a token gets its 401 at once, never a 100")
    func expectContinueUnauthorized() async throws {
        try await TestGateway.run(configure: { $0.callerTokens = try? CallerTokens(yaml: "svc: svc-token-0123456789ab\n", source: "test") }) { gw in
            let connection = try await RawConnection(port: gw.port)
            try await connection.write(
                "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n")
            let answer = try await connection.readResponse()
            #expect(answer.status == 401)
            #expect(answer.header("connection") == "close")
            try await connection.waitUntilClosed()
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("a pipelined request waiting behind an answer slower than the client timeout is not cut off, nor is that answer", .tags(.timing))
    func waitingBehindSlowAnswer() async throws {
        // 2 s, not less: the client is a task of this test run, and on a loaded 2-core machine it may take over a second
        // between connecting and writing — which the gateway rightly answers by closing.
        try await TestGateway.run(configure: { $0.clientTimeout = .seconds(2) }) { gw in
            let slow = "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-4000 HTTP/1.1\r\nHost: x\r\n\r\n"
            let responses: [TestResponse]
            do {
                responses = try await RawHTTP.exchangeMany(port: gw.port, slow + Self.send(id: "behind"), count: 2, timeout: .seconds(20))
            } catch {
                // What the gateway did, for a failure seen only on a loaded machine.
                Issue.record("\(error); the gateway logged: \(gw.logs.all.joined())")
                return
            }
            #expect(responses.map(\.status) == [404, 202])
            #expect(responses.last?.header("x-request-id") == "behind")
        }
    }

    @Test("a large answer on a connection that closes after it arrives whole")
    func largeAnswerThenClose() async throws {
        try await TestGateway.run { gw in
            let request = "GET /sms/v2/services/\(Self.sms)/messages/fault-huge-3000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, request, count: 1, untilClosed: true, timeout: .seconds(20))
            #expect(responses.count == 1)
            #expect(responses.first?.status == 200)
            #expect(responses.first.map { $0.body.count > 3_000_000 && String($0.body.count) == $0.header("content-length") } == true)
        }
    }

    @Test("a chunked body cut off mid-way is never forwarded")
    func chunkedCut() async throws {
        try await TestGateway.run { gw in
            let head = "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nX-Request-Id: chunk-cut\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            try await RawHTTP.sendAndClose(port: gw.port, head + "10\r\n{\"type\":\"SMS\",\"fr\r\n")
            try await waitFor { gw.logs.all.contains { $0.contains("chunk-cut") && $0.contains(#""msg":"request""#) } }
            #expect(gw.mock.receivedRequests.isEmpty)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains("sensgate_http_requests_in_flight 1"))
        }
    }

    @Test("Expect: 100-continue with a body over the limit gets 413 at once, and the connection ends")
    func expectContinueTooLarge() async throws {
        try await TestGateway.run(configure: { $0.maxBodyBytes = 1000 }) { gw in
            let request = "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, request, count: 1, untilClosed: true, timeout: .seconds(10))
            #expect(responses.map(\.status) == [413])
            #expect(responses.first?.header("connection") == "close")
            #expect(try responses.first?.error().code == "payload_too_large")
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("Expect: 100-continue behind a slow earlier request waits for its answer")
    func expectContinuePipelined() async throws {
        try await TestGateway.run { gw in
            let connection = try await RawConnection(port: gw.port)
            try await connection.write(
                "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-300 HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: \(Self.sendBody.utf8.count)\r\n\r\n")
            let first = try await connection.readResponse()
            #expect(first.status == 404)
            #expect(try await connection.readHead().hasPrefix("HTTP/1.1 100"))
            try await connection.write(Self.sendBody)
            #expect(try await connection.readResponse().status == 202)
            try await connection.close()
        }
    }

    @Test("HTTP/1.0 without keep-alive is answered and closed; with keep-alive it stays open")
    func http10() async throws {
        try await TestGateway.run { gw in
            let start = ContinuousClock.now
            let responses = try await RawHTTP.exchangeMany(
                port: gw.port, "GET /healthz HTTP/1.0\r\n\r\n", count: 1, untilClosed: true, timeout: .seconds(5))
            #expect(responses.map(\.status) == [200])
            #expect(ContinuousClock.now - start < .seconds(5))
            let kept = try await RawHTTP.exchangeMany(
                port: gw.port, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n", count: 2,
                untilClosed: true, timeout: .seconds(5))
            #expect(kept.map(\.status) == [200, 200])
            #expect(kept.first?.header("connection") == "keep-alive")
        }
    }

    @Test("Connection: close is answered, then the connection closes")
    func connectionClose() async throws {
        try await TestGateway.run { gw in
            let responses = try await RawHTTP.exchangeMany(
                port: gw.port, "GET \(Self.seedTarget) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                count: 1, untilClosed: true, timeout: .seconds(5))
            #expect(responses.map(\.status) == [200])
            #expect(responses.first?.header("connection") == "close")
        }
    }

    @Test(
        "HTTP/1.1 without exactly one Host is 400",
        arguments: ["GET /healthz HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"])
    func missingHost(_ request: String) async throws {
        try await TestGateway.run { gw in
            let response = try await RawHTTP.exchange(port: gw.port, request)
            #expect(response.status == 400)
            #expect(try response.error().code == "invalid_request")
        }
    }

    @Test("an upgrade gets a framed 400 and the connection ends")
    func upgrade() async throws {
        try await TestGateway.run { gw in
            let request = "GET \(Self.seedTarget) HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, request, count: 1, untilClosed: true, timeout: .seconds(5))
            #expect(responses.count == 1)
            #expect(responses.first?.header("content-length") != nil)
            #expect(responses.first?.header("connection") == "close")
        }
    }

    @Test("CONNECT gets 400 and the connection ends (the answer is framed by the close: NIO sends no body to CONNECT)")
    func connect() async throws {
        try await TestGateway.run { gw in
            let connection = try await RawConnection(port: gw.port)
            try await connection.write("CONNECT sens.apigw.ntruss.com:443 HTTP/1.1\r\nHost: sens.apigw.ntruss.com:443\r\n\r\n")
            let head = try await connection.readHead().lowercased()
            #expect(head.hasPrefix("http/1.1 400"))
            #expect(head.contains("connection: close"))
            try await connection.waitUntilClosed()
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("a send pipelined behind Connection: close is never acted on: nothing reaches SENS, nothing is answered for it")
    func behindClose() async throws {
        try await TestGateway.run { gw in
            let closing = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, closing + Self.send(id: "never"), count: 2, untilClosed: true)
            #expect(responses.map(\.status) == [200])
            #expect(responses.first?.header("connection")?.lowercased() == "close")
            #expect(gw.mock.receivedRequests.isEmpty)
            #expect(!gw.logs.all.contains { $0.contains("never") })
        }
    }

    @Test("a body refused before it is read (over the limit, without Expect) ends the connection: it is not read to its end")
    func refusedBodyCloses() async throws {
        try await TestGateway.run { gw in
            let head = "POST \(Self.sendTarget) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, head, count: 1, untilClosed: true, timeout: .seconds(20))
            #expect(responses.map(\.status) == [413])
            #expect(responses.first?.header("connection")?.lowercased() == "close")
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("a client that pipelines and never reads is not served beyond what it reads: its answers are not queued without bound")
    func backpressure() async throws {
        try await TestGateway.run(configure: { $0.maxResponseBytes = 4_000_000 }) { gw in
            // A client that reads nothing (no auto-read, a small receive buffer) asks for 20 answers of 2 MB.
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.autoRead, value: false)
                .channelOption(.socketOption(.so_rcvbuf), value: 4096)
                .connect(host: "127.0.0.1", port: gw.port).get()
            let one = "GET /sms/v2/services/\(Self.sms)/messages/fault-huge-2000000 HTTP/1.1\r\nHost: x\r\n\r\n"
            try await client.writeAndFlush(ByteBuffer(string: String(repeating: one, count: 20)))
            try await waitFor { gw.mock.receivedRequests.count >= 1 }
            // A bound for a negative: with the answers unread the gateway stops taking requests within a few.
            try await Task.sleep(for: .seconds(2))
            let served = gw.mock.receivedRequests.count
            #expect(served < 8, "\(served) of 20 answers of 2 MB queued for a client that reads nothing")
            try await client.close()
        }
    }

    @Test("HEAD: the length of the body it would have, no body; the next answer on the connection is intact")
    func head() async throws {
        try await TestGateway.run { gw in
            let connection = try await RawConnection(port: gw.port)
            try await connection.write("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let head = try await connection.readHead().lowercased()
            #expect(head.hasPrefix("http/1.1 200"))
            #expect(head.contains("content-length: 15"))
            try await connection.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let next = try await connection.readResponse()
            #expect(next.status == 200)
            #expect(next.text == #"{"status":"ok"}"#)
            try await connection.waitUntilClosed()
        }
    }
}

/// The exchange state machine alone, without sockets.
@Suite("HTTP/1.1 exchange state machine")
struct ExchangesTests {
    typealias Exchanges = HTTPExchangeHandler.Exchanges

    static func head(
        http11: Bool = true, hosts: Int = 1, keepAlive: Bool = true, originForm: Bool = true, connect: Bool = false, upgrade: Bool = false,
        expect: Bool = false, body: Bool = false
    ) -> Exchanges.Head {
        Exchanges.Head(
            isOriginForm: originForm, isHTTP11: http11, hostCount: hosts, keepAlive: keepAlive, isConnect: connect, opensTunnel: connect || upgrade,
            expectsContinue: expect, hasBody: body)
    }

    @Test("refusals: not origin-form, CONNECT, HTTP/1.1 without exactly one Host; HTTP/1.0 needs none")
    func refusals() {
        var machine = Exchanges()
        do { let step = machine.receivedHead(Self.head(originForm: false)).rejection; #expect(step == .notOriginForm) }
        do { let step = machine.receivedHead(Self.head(connect: true)).rejection; #expect(step == .notOriginForm) }
        do { let step = machine.receivedHead(Self.head(hosts: 0)).rejection; #expect(step == .host) }
        do { let step = machine.receivedHead(Self.head(hosts: 2)).rejection; #expect(step == .host) }
        do { let step = machine.receivedHead(Self.head(http11: false, hosts: 0)).rejection; #expect(step == nil) }
    }

    @Test("an exchange is over when both the request's end and its answer are in, in either order")
    func bothEnds() {
        var machine = Exchanges()
        // Answered after the end (an upstream call).
        _ = machine.receivedHead(Self.head())
        do { let step = machine.receivedEnd(); #expect(step == .none) }
        do { let step = machine.writingAnswer(); #expect(step == .none) }
        do { let step = machine.answerDone(); #expect(step == .idle) }
        #expect(!machine.isOpen)
        // Answered before its end arrives (a GET answered at once): the connection stays.
        _ = machine.receivedHead(Self.head())
        do { let step = machine.writingAnswer(); #expect(step == .none) }
        do { let step = machine.answerDone(); #expect(step == .none) }
        do { let step = machine.receivedEnd(); #expect(step == .idle) }
    }

    @Test("100 Continue: only when the route reads the body; a final answer without it ends the connection")
    func continueRules() {
        var machine = Exchanges()
        _ = machine.receivedHead(Self.head(expect: true))
        do { let step = machine.bodyWanted(); #expect(step) }
        do { let step = machine.bodyWanted(); #expect(!step) }  // once
        do { let step = machine.receivedEnd(); #expect(step == .none) }
        do { let step = machine.writingAnswer(); #expect(step == .none) }
        do { let step = machine.answerDone(); #expect(step == .idle) }
        // HTTP/1.0 knows no 100 Continue.
        _ = machine.receivedHead(Self.head(http11: false, keepAlive: true, expect: true))
        do { let step = machine.bodyWanted(); #expect(!step) }
        _ = machine.receivedEnd()
        // Refused before the route asked: the connection ends after the answer.
        var refused = Exchanges()
        _ = refused.receivedHead(Self.head(expect: true))
        do { let step = refused.writingAnswer(); #expect(step == .close) }
        do { let step = refused.answerDone(); #expect(step == .close) }
    }

    @Test("an answer while a body is still coming (refused before it was read, over the limit) ends the connection")
    func answerMidBody() {
        var refused = Exchanges()
        _ = refused.receivedHead(Self.head(body: true))
        do { let step = refused.writingAnswer(); #expect(step == .close) }
        var machine = Exchanges()
        _ = machine.receivedHead(Self.head(body: true))
        do { let step = machine.bodyWanted(); #expect(!step) }
        do { let step = machine.writingAnswer(); #expect(step == .close) }
        do { let step = machine.answerDone(); #expect(step == .close) }
    }

    @Test("Connection: close, HTTP/1.0 without keep-alive and tunnels end the connection after the answer")
    func closing() {
        for head in [Self.head(keepAlive: false), Self.head(http11: false, keepAlive: false), Self.head(upgrade: true), Self.head(connect: true)] {
            var machine = Exchanges()
            do { let step = machine.receivedHead(head).closesConnection; #expect(step) }
            _ = machine.receivedEnd()
            do { let step = machine.writingAnswer(); #expect(step == .close) }
            do { let step = machine.answerDone(); #expect(step == .close) }
        }
    }

    @Test("an HTTP/1.0 request with keep-alive gets an answer that says keep-alive")
    func http10KeepAlive() {
        var machine = Exchanges()
        _ = machine.receivedHead(Self.head(http11: false, hosts: 0, keepAlive: true))
        _ = machine.receivedEnd()
        do { let step = machine.writingAnswer(); #expect(step == .keepAlive) }
        do { let step = machine.answerDone(); #expect(step == .idle) }
        _ = machine.receivedHead(Self.head())
        _ = machine.receivedEnd()
        do { let step = machine.writingAnswer(); #expect(step == .none) }
    }

    @Test("half-close: between requests it closes; mid-body it cuts the request; awaiting an answer it closes after it")
    func halfClose() {
        var idle = Exchanges()
        do { let step = idle.inputClosed(); #expect(step == .close) }
        var midBody = Exchanges()
        _ = midBody.receivedHead(Self.head(body: true))
        _ = midBody.bodyWanted()
        do { let step = midBody.inputClosed(); #expect(step == .cutRequest) }
        midBody.cutRequest()
        do { let step = midBody.writingAnswer(); #expect(step == .close) }
        var awaiting = Exchanges()
        _ = awaiting.receivedHead(Self.head())
        _ = awaiting.receivedEnd()
        do { let step = awaiting.inputClosed(); #expect(step == .none) }
        do { let step = awaiting.writingAnswer(); #expect(step == .close) }
        do { let step = awaiting.answerDone(); #expect(step == .close) }
    }

    @Test("graceful shutdown: between requests the connection closes; otherwise after the answer, which says close")
    func quiesce() {
        var idle = Exchanges()
        do { let step = idle.quiesce(); #expect(step == .close) }
        var open = Exchanges()
        _ = open.receivedHead(Self.head())
        _ = open.receivedEnd()
        do { let step = open.quiesce(); #expect(step == .none) }
        do { let step = open.writingAnswer(); #expect(step == .close) }
        do { let step = open.answerDone(); #expect(step == .close) }
    }

    @Test("parser errors: between requests the input is refused; mid-body the request is cut")
    func parserErrors() {
        var idle = Exchanges()
        do { let step = idle.parserFailed(); #expect(step == .refuseInput) }
        idle.refusingInput()
        do { let step = idle.writingAnswer(); #expect(step == .close) }
        do { let step = idle.answerDone(); #expect(step == .close) }
        var midBody = Exchanges()
        _ = midBody.receivedHead(Self.head(body: true))
        _ = midBody.bodyWanted()
        do { let step = midBody.parserFailed(); #expect(step == .cutRequest) }
    }
}

/// Waits until `condition` holds (at most about 10 s): for effects that land after an answer, such as log lines.
@Suite("Graceful shutdown and idle connections")
struct IdleShutdownTests {
    @Test("graceful shutdown closes an idle keep-alive connection at once, not after the client timeout")
    func idleClosedAtOnce() async throws {
        // From the end of the traffic, when the shutdown starts (the gateway may have waited to start, for tests that
        // run alone).
        let shutdownStarted = Mutex(ContinuousClock.now)
        try await TestGateway.run(configure: { $0.clientTimeout = .seconds(120) }) { gw in
            // libcurl keeps the connection in its pool, idle, and does not read it until it is used again.
            let status = try await gw.send("GET", "/healthz").status
            #expect(status == 200)
            shutdownStarted.withLock { $0 = .now }
        }
        #expect(ContinuousClock.now - shutdownStarted.withLock { $0 } < .seconds(60))
    }
}

func waitFor(_ condition: () -> Bool) async throws {
    for _ in 0..<1000 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met in time")
}

/// One client connection driven step by step: write, read an interim head, read a response.
final class RawConnection: Sendable {
    private let channel: any Channel
    /// Bytes received and not yet taken, and whether the server closed the connection.
    private let received = Received()

    init(port: Int) async throws {
        let received = self.received
        self.channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(received: received)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func write(_ text: String) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Reads one head (an interim `1xx`, say), without a body.
    func readHead() async throws -> String {
        String(decoding: try await self.take { bytes in RawHTTP.headerEnd(bytes).map { $0 + 4 } }, as: UTF8.self)
    }

    func readResponse() async throws -> TestResponse {
        try RawHTTP.parse(try await self.take { RawHTTP.completeLength($0) })
    }

    func close() async throws {
        try await self.channel.close()
    }

    /// Waits until the server has closed the connection.
    func waitUntilClosed() async throws {
        try await self.channel.closeFuture.get()
    }

    /// Waits until `length` finds a complete unit at the front of what was received, and takes it.
    private func take(_ length: ([UInt8]) -> Int?) async throws -> [UInt8] {
        for _ in 0..<2000 {
            let unit = self.received.state.withLock { received -> [UInt8]? in
                guard let count = length(received.bytes) else { return nil }
                defer { received.bytes.removeFirst(count) }
                return Array(received.bytes[..<count])
            }
            if let unit { return unit }
            if self.received.state.withLock({ $0.closed }) { throw RawHTTP.RawHTTPError.malformed("closed") }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw RawHTTP.RawHTTPError.timedOut
    }

    private final class Received: Sendable {
        let state = Mutex<(bytes: [UInt8], closed: Bool)>(([], false))
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: Received

        init(received: Received) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.received.state.withLock { $0.bytes += buffer.readableBytesView }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.received.state.withLock { $0.closed = true }
        }
    }
}
