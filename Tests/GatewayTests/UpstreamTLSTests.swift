import Foundation
import GatewayServer
import SENSMock
import Signing
import Testing

/// sensgate → SENS as in production: `https`, certificates verified, HTTP/2 agreed by ALPN. The project's mock sits
/// behind a TLS front (Support/TLSUpstream.swift) with a test CA that sensgate is given as `upstream-ca-file`.
@Suite("Upstream over TLS", .tags(.timing))
struct UpstreamTLSTests {
    static let sms = Fixtures.smsServiceID

    @Test("over TLS with HTTP/2, concurrent passthrough and lookups are signed, verified and share one connection")
    func http2() async throws {
        try await TestGateway.run(tls: TLSUpstream.Setup()) { gw in
            // The burst comes first: requests that arrive while the connection is still in its handshake wait for it.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<30 {
                    group.addTask {
                        let target = index.isMultiple(of: 2)
                            ? "/sms/v2/services/\(Self.sms)/messages/sms-delivered-0001"
                            : "/v1/results/sms/sms-delivered-0001"
                        return try await gw.send("GET", target).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 30))
            let body = #"{"type":"SMS","from":"0212345678","content":"héllo","messages":[{"to":"01012345678"}]}"#
            let sent = try await gw.send("POST", "/sms/v2/services/\(Self.sms)/messages",
                                         headers: [("Content-Type", "application/json")], body: body)
            #expect(sent.status == 202)
            #expect(gw.mock.receivedRequests.last?.body == Array(body.utf8))
            let received = gw.mock.receivedRequests
            #expect(received.count >= 16)  // 15 passthrough + the send; identical lookups in flight may coalesce
            #expect(received.allSatisfy { $0.signatureValid && $0.httpVersion == "2" })
            #expect(gw.mock.acceptedConnections == 1)
        }
    }

    @Test("HTTP/1.1 over TLS when the upstream offers only that: a burst does not wait on one connection; keep-alive after")
    func http1() async throws {
        try await TestGateway.run(tls: TLSUpstream.Setup(protocols: ["http/1.1"])) { gw in
            // The burst comes first: requests that waited for the first handshake (CURLOPT_PIPEWAIT) learn that it
            // cannot multiplex and open their own connections.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/sms-delivered-0001").status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 20))
            let afterBurst = gw.mock.acceptedConnections  // usually several; how many depends on timing
            for _ in 0..<10 {
                let response = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
                #expect(response.status == 200)
            }
            #expect(gw.mock.acceptedConnections == afterBurst)  // kept alive and reused
            let received = gw.mock.receivedRequests
            #expect(received.count == 30)
            #expect(received.allSatisfy { $0.signatureValid && $0.httpVersion == "1.1" })
        }
    }

    @Test("a certificate the gateway does not trust, or one for another host, is refused: 502 and nothing sent",
          arguments: [
            TLSUpstream.Setup(trustTestAuthority: false),
            TLSUpstream.Setup(certificate: .otherName),
          ])
    func refusedCertificate(_ setup: TLSUpstream.Setup) async throws {
        try await TestGateway.run(tls: setup) { gw in
            let response = try await gw.send("GET", "/sms/v2/services/\(Self.sms)/messages/sms-delivered-0001")
            #expect(response.status == 502)
            #expect(try response.error().code == "upstream_unreachable")
            let lookup = try await gw.send("GET", "/v1/results/sms/sms-delivered-0001")
            #expect(lookup.status == 502)
            #expect(gw.mock.acceptedConnections >= 1)  // it was reached, and the handshake failed
            #expect(gw.mock.receivedRequests.isEmpty)
        }
    }

    @Test("through an egress proxy named by https_proxy: a CONNECT tunnel to SENS, TLS still verified end to end")
    func egressProxy() async throws {
        let secret = "proxy-test-secret"
        let mock = SENSMock(accessKey: "AK", secretKey: SecretKey(secret))
        _ = try await mock.start()
        let front = try await TLSUpstream.start(mock: mock, setup: TLSUpstream.Setup())
        let caFile = try TLSUpstream.authorityFile()
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        let proxy = ConnectProxy()
        try await LoadGate.scope { try await proxy.run { proxyPort in
            let port = try await freePort()
            let process = Process()
            process.executableURL = try sensgateExecutable()
            process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--upstream", "https://127.0.0.1:\(front.port)",
                                 "--upstream-ca-file", caFile]
            // libcurl reads the proxy from the environment, as curl does; nothing in sensgate's own configuration.
            process.environment = [
                "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": secret, "https_proxy": "http://127.0.0.1:\(proxyPort)",
                "SENSGATE_DATA_DIR": NSTemporaryDirectory() + "sensgate-\(UUID().uuidString)",
                // The proxy and the TLS front are tasks of this test run, which on a loaded 2-core machine shares its
                // few threads with every other test: room for them to be slow, not a bound on them.
                "SENSGATE_UPSTREAM_TIMEOUT": "40",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
            try await waitUntilServing(port: port)

            let response = try await RawHTTP.exchange(
                port: port, "GET /sms/v2/services/s/messages/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                timeout: .seconds(50))
            #expect(response.status == 200)
            #expect(proxy.connectTargets == ["127.0.0.1:\(front.port)"])
            let received = try #require(mock.receivedRequests.last)
            #expect(received.signatureValid && received.httpVersion == "2")
        } }
        await front.stop()
        await mock.stop()
    }
}
