import DeliveryResults
import Foundation
import NIOCore
import Signing
@testable import GatewayServer
import SENSMock
import Testing

@Suite("Result cache and coalescing")
struct CacheTests {
    static func withCache(_ configuration: inout GatewayConfiguration) {
        configuration.cacheTTL = .seconds(60)
    }

    @Test("a completed result is served from the cache, raw included, without calling SENS again")
    func completedIsCached() async throws {
        try await TestGateway.run(configure: Self.withCache) { gw in
            let first = try await gw.send("GET", "/v1/results/sms/sms-poweroff-2003")
            let second = try await gw.send("GET", "/v1/results/sms/sms-poweroff-2003")
            let raw = try await gw.send("GET", "/v1/results/sms/sms-poweroff-2003?include=raw")
            let batch = try await gw.send("POST", "/v1/results:batch", body: #"{"lookups":[{"channel":"sms","messageId":"sms-poweroff-2003"}]}"#)
            #expect(first.status == 200 && second.status == 200)
            #expect(first.body == second.body)
            #expect(try raw.json()["raw"] is [String: Any])
            #expect(((try batch.json()["results"] as? [[String: Any]])?.first?["class"] as? String) == "transient")
            #expect(gw.mock.receivedRequests.count == 1)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"sensgate_result_cache_total{outcome="hit"} 3"#))
            #expect(metrics.contains(#"sensgate_result_cache_total{outcome="miss"} 1"#))
        }
    }

    @Test("pending results and errors are not cached; another service ID is another entry")
    func pendingNotCached() async throws {
        try await TestGateway.run(configure: Self.withCache) { gw in
            for _ in 0..<2 { _ = try await gw.send("GET", "/v1/results/sms/sms-processing-0001") }
            for _ in 0..<2 { _ = try await gw.send("GET", "/v1/results/sms/no-such-message") }
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001?serviceId=ncp:sms:kr:2:other")
            #expect(gw.mock.receivedRequests.count == 6)
        }
    }

    @Test("entries expire after the TTL")
    func ttl() async throws {
        // The end-to-end half: a second lookup within the TTL is served from the cache.
        try await TestGateway.run(configure: { $0.cacheTTL = .seconds(60) }) { gw in
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(gw.mock.receivedRequests.count == 1)
        }
        // The expiry itself, on the cache's own clock: no sleeping, so no load can make it flaky.
        let cache = ResultCache(capacity: 10, ttl: .milliseconds(300))
        let key = ResultCache.Key(channel: .sms, serviceId: "s", messageId: "m")
        let result = try #require(
            try Normalizer().normalize(
                channel: .sms, serviceId: "s",
                body: Array(#"{"statusCode":"200","statusName":"success","messages":[{"messageId":"m","requestId":"r","status":"COMPLETED","statusCode":"0","statusName":"success"}]}"#.utf8)
            ).first)
        let t0 = ContinuousClock.now
        cache.put(key, .init(result: result, raw: [], json: []), now: t0)
        #expect(cache.get(key, now: t0 + .milliseconds(299)) != nil)
        #expect(cache.get(key, now: t0 + .milliseconds(300)) == nil)
    }

    @Test("identical concurrent lookups share one upstream call")
    func coalescing() async throws {
        try await TestGateway.run { gw in
            // Long enough for all ten to arrive while the first is out, even on a loaded machine.
            gw.mock.injectFault(.delay(milliseconds: 3000))
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 { group.addTask { try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 10))
            #expect(gw.mock.receivedRequests.count == 1)
            let metrics = try await gw.send("GET", "/metrics").text
            #expect(metrics.contains(#"sensgate_result_cache_total{outcome="coalesced"} 9"#))
        }
    }

    @Test("the LRU keeps the most recently used entries")
    func lru() throws {
        let cache = ResultCache(capacity: 2, ttl: .seconds(60))
        let result = try #require(try Normalizer().normalize(
            channel: .sms, serviceId: "s", body: Array(#"{"messages":[{"messageId":"a","status":"COMPLETED","statusCode":"0"}]}"#.utf8)).first)
        func key(_ id: String) -> ResultCache.Key { ResultCache.Key(channel: .sms, serviceId: "s", messageId: id) }
        cache.put(key("a"), .init(result: result, raw: [], json: [1]))
        cache.put(key("b"), .init(result: result, raw: [], json: [2]))
        #expect(cache.get(key("a"))?.json == ByteBuffer(bytes: [1]))  // a is now the most recent
        cache.put(key("c"), .init(result: result, raw: [], json: [3]))
        #expect(cache.get(key("b")) == nil)
        #expect(cache.get(key("a"))?.json == ByteBuffer(bytes: [1]))
        #expect(cache.get(key("c"))?.json == ByteBuffer(bytes: [3]))
        #expect(cache.count == 2)
        #expect(cache.get(key("c"), now: .now + .seconds(61)) == nil)
        let off = ResultCache(capacity: 10, ttl: .zero)
        off.put(key("a"), .init(result: result, raw: [], json: [1]))
        #expect(off.get(key("a")) == nil)
    }
}

@Suite("Result lookups answered before the router")
struct ResultLookupTests {
    static let tokens = """
        billing: billing-token-0123456789
        marketing:
          token: marketing-token-abcdefghij
          channels: [brandmessage]
        """

    static func withCacheAndTokens(_ configuration: inout GatewayConfiguration) {
        configuration.cacheTTL = .seconds(60)
        configuration.callerTokens = try? CallerTokens(yaml: Self.tokens, source: "test")
    }

    @Test("a hit carries the same status, headers, body and log line as the routed answer")
    func sameAnswer() async throws {
        try await TestGateway.run(configure: Self.withCacheAndTokens) { gw in
            let request = "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer billing-token-0123456789\r\n"
            // `Connection: close` leaves a request to the router: the first lookup goes that way, the repeat does not.
            let routed = try await RawHTTP.exchange(port: gw.port, request + "X-Request-Id: first-trace-a\r\nConnection: close\r\n\r\n")
            let hit = try await RawHTTP.exchange(port: gw.port, request + "X-Request-Id: second-trace-b\r\n\r\n")
            #expect(routed.status == 200 && hit.status == 200)
            #expect(hit.body == routed.body)
            #expect(gw.mock.receivedRequests.count == 1)
            for response in [routed, hit] {
                #expect(response.header("content-type") == "application/json")
                #expect(response.header("content-length") == String(routed.body.count))
                #expect(response.header("date")?.hasSuffix(" GMT") == true)
            }
            #expect(routed.header("x-request-id") == "first-trace-a" && hit.header("x-request-id") == "second-trace-b")
            let lines = gw.logs.all.filter { $0.contains(#""msg":"request""#) }
            let first = try #require(lines.first { $0.contains("first-trace-a") })
            let second = try #require(lines.first { $0.contains("second-trace-b") })
            for line in [first, second] {
                for field in [#""caller":"billing""#, #""route":"/v1/results""#, #""status":200"#, #""class":"success""#, #""bytesOut":\#(routed.body.count)"#] {
                    #expect(line.contains(field), "\(field) missing in \(line)")
                }
            }
            let metrics = try await gw.send("GET", "/metrics", headers: [("Authorization", "Bearer billing-token-0123456789")]).text
            #expect(metrics.contains(#"sensgate_result_cache_total{outcome="hit"} 1"#))
            #expect(metrics.contains(#"route="/v1/results",status="200""#) || metrics.contains(#"status="200""#))
            // Lookups SENS answers with an error: the same envelope from either path.
            for message in ["no-such-message", "fault-status-503", "fault-wrongshape"] {
                let lookup = "GET /v1/results/sms/\(message) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer billing-token-0123456789\r\nX-Request-Id: same-id\r\n"
                let direct = try await RawHTTP.exchange(port: gw.port, lookup + "\r\n")
                let viaRouter = try await RawHTTP.exchange(port: gw.port, lookup + "Connection: close\r\n\r\n")
                #expect(direct.status == viaRouter.status && direct.status >= 400, "\(message)")
                #expect(direct.text == viaRouter.text, "\(message)")
            }
            // Without a token the same cached message is the router's 401.
            let refused = try await RawHTTP.exchange(port: gw.port, "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(refused.status == 401)
            #expect(try refused.error().code == "unauthorized")
        }
    }

    @Test("pipelined requests are answered in order, hits and routed requests mixed")
    func pipelined() async throws {
        try await TestGateway.run(configure: CacheTests.withCache) { gw in
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status == 200)  // now cached
            let hit = "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\n\r\n"
            let slow = "GET /v1/results/sms/sms-poweroff-2003 HTTP/1.1\r\nHost: x\r\n\r\n"  // a miss: an upstream call
            let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            gw.mock.injectFault(.delay(milliseconds: 200))
            let responses = try await RawHTTP.exchangeMany(port: gw.port, hit + slow + hit + health + hit, count: 5)
            #expect(responses.map(\.status) == [200, 200, 200, 200, 200])
            let classes = try responses.map { try $0.json()["class"] as? String ?? $0.json()["status"] as? String }
            #expect(classes == ["success", "transient", "success", "ok", "success"])
        }
    }

    @Test("a cached message asked for with Connection: close is answered, then the connection is closed")
    func connectionClose() async throws {
        try await TestGateway.run(configure: CacheTests.withCache) { gw in
            #expect(try await gw.send("GET", "/v1/results/sms/sms-delivered-0001").status == 200)
            let request = "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let responses = try await RawHTTP.exchangeMany(port: gw.port, request, count: 1, untilClosed: true)
            #expect(responses.first?.status == 200)
            #expect(gw.mock.receivedRequests.count == 1)
        }
    }
}
