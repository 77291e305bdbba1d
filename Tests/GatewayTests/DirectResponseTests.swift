import Foundation
@testable import GatewayServer
import SENSMock
import Testing

/// The passthrough and cache hits are answered on the connection's event loop (``DirectResponseHandler``); every
/// other request goes through the router. These tests hold the two to the same answers and check what only the direct
/// path has to get right itself: order under pipelining, a caller that goes away, and a client that pipelines without
/// bound.
@Suite("Answers before the router")
struct DirectResponseTests {
    static let sms = Fixtures.smsServiceID

    @Test("the same passthrough request gets the same answer directly and through the router")
    func sameAsRouter() async throws {
        try await TestGateway.run { gw in
            let target = "/sms/v2/services/\(Self.sms)/messages/\(Fixtures.smsSeedMessageID)"
            // `Connection: close` is left to the router's connection loop: the same request, the other path.
            let direct = try await RawHTTP.exchange(port: gw.port, "GET \(target) HTTP/1.1\r\nHost: x\r\nX-Request-Id: direct-a\r\n\r\n")
            let routed = try await RawHTTP.exchange(port: gw.port, "GET \(target) HTTP/1.1\r\nHost: x\r\nX-Request-Id: routed-b\r\nConnection: close\r\n\r\n")
            #expect(direct.status == 200 && routed.status == 200)
            #expect(direct.body == routed.body)
            for name in ["content-type", "content-length"] { #expect(direct.header(name) == routed.header(name), "\(name)") }
            #expect(direct.header("x-request-id") == "direct-a" && routed.header("x-request-id") == "routed-b")
            #expect(direct.header("date") != nil && routed.header("date") != nil)
            let lines = gw.logs.all.filter { $0.contains(#""msg":"request""#) }
            let directLine = try #require(lines.first { $0.contains("direct-a") })
            let routedLine = try #require(lines.first { $0.contains("routed-b") })
            for field in [#""route":"/sms/v2""#, #""status":200"#, #""upstreamStatus":200"#, #""method":"GET""#, #""bytesOut":\#(direct.body.count)"#] {
                #expect(directLine.contains(field) && routedLine.contains(field), "\(field)")
            }
            // Errors too: an upstream that cannot be reached in time is the same envelope either way.
            let slow = "/sms/v2/services/\(Self.sms)/messages/fault-status-503"
            let directError = try await RawHTTP.exchange(port: gw.port, "GET \(slow) HTTP/1.1\r\nHost: x\r\n\r\n")
            let routedError = try await RawHTTP.exchange(port: gw.port, "GET \(slow) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(directError.status == routedError.status)
            #expect(directError.body == routedError.body)
        }
    }

    @Test("pipelined passthrough and routed requests are answered in order")
    func pipelined() async throws {
        try await TestGateway.run { gw in
            let slow = "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-300 HTTP/1.1\r\nHost: x\r\n\r\n"
            let fast = "GET /sms/v2/services/\(Self.sms)/messages/\(Fixtures.smsSeedMessageID) HTTP/1.1\r\nHost: x\r\n\r\n"
            let post = "POST /sms/v2/services/\(Self.sms)/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, slow + health + fast + slow + post + fast, count: 6)
            #expect(responses.count == 6)
            let received = gw.mock.receivedRequests.map(\.target)
            #expect(received.count == 5)
            // Each answer is the one for its request: health in second place, the seed message third and last.
            #expect(responses.map(\.status) == [404, 200, 200, 404, responses[4].status, 200])
            #expect(responses[1].text.contains(#""status":"ok""#))
            #expect(responses[2].text.contains(Fixtures.smsSeedMessageID) && responses[5].text.contains(Fixtures.smsSeedMessageID))
            #expect(!responses[4].text.contains(Fixtures.smsSeedMessageID))
        }
    }

    @Test("a caller that goes away while SENS is slow leaves nothing behind")
    func callerGone() async throws {
        try await TestGateway.run { gw in
            let slow = "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-600 HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-caller\r\n\r\n"
            // Gives up after 200 ms and closes the connection while the call to SENS is out.
            await #expect(throws: RawHTTP.RawHTTPError.self) { try await RawHTTP.exchange(port: gw.port, slow, timeout: .milliseconds(200)) }
            try await Task.sleep(for: .milliseconds(800))
            // The scrape itself is the one request in flight; the abandoned one finished and was logged.
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains("sensgate_http_requests_in_flight 1"), "\(metrics.split(separator: "\n").filter { $0.contains("in_flight") })")
            #expect(gw.logs.all.contains { $0.contains("gone-caller") && $0.contains(#""msg":"request""#) })
            let after = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/\(Fixtures.smsSeedMessageID)")
            #expect(after.status == 200)
        }
    }

    @Test("a client that pipelines without bound while its call is out is disconnected")
    func unboundedPipelining() async throws {
        try await TestGateway.run { gw in
            let slow = "GET /sms/v2/services/\(Self.sms)/messages/fault-delay-500 HTTP/1.1\r\nHost: x\r\n\r\n"
            let flood = String(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 200)
            // Closed with requests unread, the connection may end in a reset; either way it ends, without 201 answers.
            let responses = (try? await RawHTTP.exchangeMany(port: gw.port, slow + flood, count: 201, untilClosed: true)) ?? []
            #expect(responses.count < 201)
            let after = try await gw.send("GET", "/healthz")
            #expect(after.status == 200)
        }
    }
}
