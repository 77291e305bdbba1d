import Foundation
import GatewayServer
import SENSMock
import Store
import Testing

/// Tracked sends (PRODUCT.md §6): which sends are tracked, and their records committed before SENS's answer goes back.
@Suite("Tracking: the record of a send")
struct TrackingTests {
    static let target = "/sms/v2/services/\(Fixtures.smsServiceID)/messages"
    static let body = #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01012345678"}]}"#

    static func send(_ extra: String = "") -> String {
        "POST \(Self.target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(Self.body.utf8.count)\r\nConnection: close\r\n\r\n\(Self.body)"
    }

    @Test("X-Sensgate-Track: true — the record is in the store when the 202 arrives, and the answer names it")
    func trackedByHeader() async throws {
        try await TestGateway.run { gw in
            let response = try await RawHTTP.exchange(port: gw.port, Self.send("X-Sensgate-Track: true\r\n"))
            #expect(response.status == 202)
            let requestId = try #require(try response.json()["requestId"] as? String)
            #expect(response.header("x-sensgate-tracking") == requestId)
            let (record, results) = try #require(try await gw.store.request(id: requestId))
            #expect(record.channel == "sms")
            #expect(record.serviceId == Fixtures.smsServiceID)
            #expect(record.caller == "anonymous")
            #expect(record.state == .tracking)
            #expect(record.nextPollAt == record.acceptedAt + 2_000)
            #expect(results.isEmpty)
            // The header is the gateway's: SENS never sees it.
            #expect(gw.mock.receivedRequests.last?.headers.contains { $0.0.lowercased().hasPrefix("x-sensgate") } == false)
        }
    }

    @Test("a scheduled send (reserveTime, Korea time) is first polled 2 s after its time, not after acceptance")
    func reserved() async throws {
        try await TestGateway.run { gw in
            let body = #"{"type":"SMS","from":"0212345678","content":"hi","reserveTime":"2030-01-01 09:00","messages":[{"to":"01012345678"}]}"#
            let response = try await RawHTTP.exchange(
                port: gw.port,
                "POST \(Self.target) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Sensgate-Track: true\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
            let requestId = try #require(try response.json()["requestId"] as? String)
            let (record, _) = try #require(try await gw.store.request(id: requestId))
            // 2030-01-01T00:00:00Z
            #expect(record.reserveAt == 1_893_456_000_000)
            #expect(record.nextPollAt == 1_893_456_002_000)
        }
    }

    @Test("a stored row that is not JSON (a damaged store) is a classified 503, never a broken answer")
    func damagedRow() async throws {
        try await TestGateway.run { gw in
            // Due only far in the future, so the gateway's own tracker leaves it to the test.
            let far: StoreTime = 4_000_000_000_000
            try await gw.store.track(TrackedRequest(requestId: "RDAMAGED-1", channel: "sms", serviceId: "s", caller: "anonymous", acceptedAt: 0, nextPollAt: far))
            let claimed = try #require(try await gw.store.claimDueRequests(now: far, limit: 10, lease: 60_000).first { $0.requestId == "RDAMAGED-1" })
            let outcome = PollOutcome(
                results: [StoredResult(messageId: "m", isFinal: false, json: "{not json")], state: .tracking, nextPollAt: far + 1, eventBody: { _ in "" })
            #expect(try await gw.store.recordPoll(claimed, outcome: outcome, now: far))
            let answer = try await gw.send("GET", "/v1/requests/RDAMAGED-1")
            #expect(answer.status == 503)
            #expect(try answer.error().code == "store_unavailable")
        }
    }

    @Test("untracked sends leave no record; track: true tracks every send")
    func defaults() async throws {
        try await TestGateway.run { gw in
            let response = try await RawHTTP.exchange(port: gw.port, Self.send())
            #expect(response.status == 202)
            #expect(response.header("x-sensgate-tracking") == nil)
            let requestId = try #require(try response.json()["requestId"] as? String)
            #expect(try await gw.store.request(id: requestId) == nil)
        }
        try await TestGateway.run(configure: { $0.track = true }) { gw in
            let tracked = try await RawHTTP.exchange(port: gw.port, Self.send())
            let requestId = try #require(try tracked.json()["requestId"] as? String)
            #expect(tracked.header("x-sensgate-tracking") == requestId)
            let alsoTracked = try await RawHTTP.exchange(port: gw.port, Self.send("X-Sensgate-Track: false\r\n"))
            #expect(alsoTracked.status == 202)
            #expect(alsoTracked.header("x-sensgate-tracking") != nil)  // the setting asks; the header only adds
            // Lookups and other methods are never tracked.
            let lookup = try await RawHTTP.exchange(
                port: gw.port, "GET \(Self.target)?requestId=RSMA-demo-0001 HTTP/1.1\r\nHost: x\r\nX-Sensgate-Track: true\r\nConnection: close\r\n\r\n")
            #expect(lookup.status == 200)
            #expect(lookup.header("x-sensgate-tracking") == nil)
        }
    }

    @Test("GET /v1/requests/{requestId}: the record as stored, to its own caller only; an untracked request is 404")
    func readBack() async throws {
        let tokens = "orders:\n  token: orders-token-0123456789\nbilling: billing-token-0123456789\n"
        let file = NSTemporaryDirectory() + "sensgate-tokens-\(UUID().uuidString).yaml"
        try tokens.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try await TestGateway.run(configure: { configuration in
            configuration.callerTokensFile = file
            configuration.callerTokens = try? CallerTokens(yaml: tokens, source: file)
            // Not polled while the test reads it, however slow a loaded machine is.
            configuration.trackSchedule.first = .seconds(3600)
        }) { gw in
            let response = try await RawHTTP.exchange(port: gw.port, Self.send("X-Sensgate-Token: orders-token-0123456789\r\nX-Sensgate-Track: true\r\n"))
            let requestId = try #require(response.header("x-sensgate-tracking"))
            func read(_ token: String, _ id: String = requestId) async throws -> TestResponse {
                try await RawHTTP.exchange(
                    port: gw.port, "GET /v1/requests/\(id) HTTP/1.1\r\nHost: x\r\nX-Sensgate-Token: \(token)\r\nConnection: close\r\n\r\n")
            }
            let mine = try await read("orders-token-0123456789")
            #expect(mine.status == 200)
            let json = try mine.json()
            #expect(json["requestId"] as? String == requestId)
            #expect(json["caller"] as? String == "orders")
            #expect(json["state"] as? String == "tracking")
            #expect((json["acceptedAt"] as? String)?.hasSuffix("Z") == true)
            #expect((json["results"] as? [Any])?.isEmpty == true)
            #expect(try await read("billing-token-0123456789").status == 404)
            #expect(try await read("orders-token-0123456789", "RSMA-never-tracked").status == 404)
        }
    }

    @Test("a store that cannot commit: the send stands, the answer says X-Sensgate-Tracking: failed")
    func storeDown() async throws {
        try await TestGateway.run { gw in
            await gw.store.close()
            let response = try await RawHTTP.exchange(port: gw.port, Self.send("X-Sensgate-Track: true\r\n"))
            #expect(response.status == 202)
            #expect(response.header("x-sensgate-tracking") == "failed")
            #expect(gw.logs.all.contains { $0.contains("a send to track was not recorded") })
        }
    }
}
