import DeliveryResults
import Foundation
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
        try await TestGateway.run(configure: { $0.cacheTTL = .milliseconds(300) }) { gw in
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(gw.mock.receivedRequests.count == 1)
            try await Task.sleep(for: .milliseconds(500))
            _ = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(gw.mock.receivedRequests.count == 2)
        }
    }

    @Test("identical concurrent lookups share one upstream call")
    func coalescing() async throws {
        try await TestGateway.run { gw in
            gw.mock.injectFault(.delay(milliseconds: 600))
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
        cache.put(key("a"), result: result, raw: [], json: [1])
        cache.put(key("b"), result: result, raw: [], json: [2])
        #expect(cache.get(key("a"))?.json == [1])  // a is now the most recent
        cache.put(key("c"), result: result, raw: [], json: [3])
        #expect(cache.get(key("b")) == nil)
        #expect(cache.get(key("a"))?.json == [1])
        #expect(cache.get(key("c"))?.json == [3])
        #expect(cache.count == 2)
        #expect(cache.get(key("c"), now: .now + .seconds(61)) == nil)
        let off = ResultCache(capacity: 10, ttl: .zero)
        off.put(key("a"), result: result, raw: [], json: [1])
        #expect(off.get(key("a")) == nil)
    }
}
