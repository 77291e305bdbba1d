import Foundation
import GatewayServer
import SENSMock
import Signing
@testable import SENSClient
import Testing

@Suite("Secrets")
struct SecretsTests {
    static let phones = ["01012345678", "01098765432", "0212345678", "01055557777", "821055557777", "01099998888"]

    @Test("across a broad mix of traffic, no log line, error body or metrics output holds the secret, a signature or a full phone number")
    func nothingLeaks() async throws {
        try await TestGateway.run(configure: {
            $0.retryPolicy.baseBackoff = .milliseconds(5)
            $0.upstreamTimeout = .milliseconds(800)
        }) { gw in
            // The gateway logs at trace level for this test: everything it could say, it says.
            var outputs: [String] = []
            func record(_ response: TestResponse) {
                if response.status >= 400 { outputs.append(response.text) }
            }
            let sms = Fixtures.smsServiceID
            let calls: [(String, String, [(String, String)], String?)] = [
                ("POST", "/sms/v2/services/\(sms)/messages", [("content-type", "application/json")],
                 #"{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"01055557777"}]}"#),
                ("GET", "/sms/v2/services/\(sms)/messages?requestId=RSMA-demo-0001&to=01055557777", [], nil),
                ("GET", "/sms/v2/services/\(sms)/messages/01055557777", [], nil),
                ("GET", "/v1/results/sms/01055557777", [], nil),
                ("GET", "/v1/results/sms/sms-delivered-0001?include=raw", [], nil),
                ("GET", "/v1/results/brandmessage/bm-failover-delivered", [], nil),
                ("GET", "/v1/results/sms?requestId=RSMA-demo-0001", [], nil),
                ("GET", "/v1/results/sms/x?serviceId=+821055557777", [], nil),
                ("GET", "/v1/results/sms/fault-status-503", [], nil),
                ("GET", "/v1/results/sms/fault-status-401", [], nil),
                ("GET", "/v1/results/sms/fault-garbage", [], nil),
                ("GET", "/v1/results/sms/fault-reset", [], nil),
                ("GET", "/v1/results/sms/fault-delay-2000", [], nil),
                ("GET", "/v1/results/fax/01055557777", [], nil),
                ("GET", "/sms/v2/../01055557777", [], nil),
                ("GET", "/nowhere/01055557777", [], nil),
                ("GET", "/sms/v2/services/s/messages/x", [("x-ncp-apigw-signature-v2", "caller-forged-signature"), ("Authorization", "Bearer 01055557777")], nil),
                ("POST", "/v1/results:batch", [], #"{"lookups":[{"channel":"sms","messageId":"01055557777"},{"channel":"sms","messageId":"fault-truncate"}]}"#),
                ("POST", "/v1/results:batch", [], #"{"lookups":"01055557777"}"#),
            ]
            for (method, target, headers, body) in calls {
                record(try await gw.send(method, target, headers: headers, body: body))
            }
            // A caller's own X-Request-Id comes back to that caller (the contract), and is masked in the log.
            let echoed = try await RawHTTP.exchange(port: gw.port, "GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: 01099998888\r\nConnection: close\r\n\r\n")
            #expect(try echoed.error().requestId == "01099998888")
            #expect(echoed.header("x-request-id") == "01099998888")
            let metrics = try await gw.send("GET", "/metrics").text
            outputs.append(metrics)
            outputs += gw.logs.all

            let signatures = gw.mock.receivedRequests.compactMap { $0.header("x-ncp-apigw-signature-v2") }
            #expect(signatures.count > 10)
            let forbidden = [TestGateway.secret] + signatures + Self.phones
            for text in outputs {
                for secret in forbidden {
                    #expect(!text.contains(secret), "leaked \(secret) in: \(text.prefix(300))")
                }
            }
            // The access log did see the requests (masked).
            #expect(gw.logs.all.contains { $0.contains("010********") })
        }
    }

    @Test("SIGHUP re-reads the secret key file: key rotation without a restart")
    func keyRotation() async throws {
        let mock = SENSMock(accessKey: "AK", secretKey: SecretKey("rotated-secret"))
        let mockPort = try await mock.start()
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("sensgate-key-\(UUID().uuidString)").path
        try "old-secret\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let port = try await freePort()
        let process = Process()
        process.executableURL = try sensgateExecutable()
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--upstream", "http://127.0.0.1:\(mockPort)", "--secret-key-file", keyFile,
                             "--sms-service-id", "ncp:sms:kr:1:x"]
        process.environment = ["NCP_ACCESS_KEY": "AK", "SENSGATE_DATA_DIR": NSTemporaryDirectory() + "sensgate-\(UUID().uuidString)"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        func lookup() async throws -> Int {
            try await RawHTTP.exchange(port: port, "GET /v1/results/sms/sms-delivered-0001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: .seconds(5)).status
        }
        var status = 0
        for _ in 0..<200 where status == 0 {
            status = (try? await lookup()) ?? 0
            if status == 0 { try await Task.sleep(for: .milliseconds(25)) }
        }
        #expect(status == 502)  // upstream_auth_failed: the old key
        try "rotated-secret\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        for _ in 0..<100 where status != 200 {
            try await Task.sleep(for: .milliseconds(50))
            status = try await lookup()
        }
        #expect(status == 200)
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
        #expect(process.terminationStatus == 0)
        let logs = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(logs.contains("secret key reloaded"))
        #expect(!logs.contains("rotated-secret") && !logs.contains("old-secret"))
        await mock.stop()
    }
}

@Suite("Phone masking")
struct PhoneMaskingTests {
    @Test(
        "phone numbers are masked in the formats people write them",
        arguments: [
            ("to=01012345678", "to=010********"),
            ("010-1234-5678", "010-****-****"),
            ("010.1234.5678", "010.****.****"),
            ("010 1234 5678", "010 **** ****"),
            ("(010)1234-5678", "(010)****-****"),
            ("+82 10 1234 5678", "+82 1* **** ****"),
            ("+82-10-1234-5678", "+82-1*-****-****"),
            ("/x?to=010%201234%205678", "/x?to=010%20****%20****"),
            ("/x?to=010%2E1234%2e5678", "/x?to=010%2E****%2e****"),
            ("/x?to=%2B821012345678", "/x?to=%2B821*********"),
            ("/m/%30%31%30%31%32%33%34%35%36%37%38", "/m/%30%31%30" + String(repeating: "***", count: 8)),
            ("010_1234_5678", "010_****_****"),
        ])
    func masked(_ text: String, _ expected: String) {
        #expect(PhoneMasking.mask(text) == expected)
    }

    @Test("short numbers, dates and times stay", arguments: ["2026-12-01", "12:30:45", "/v1/results/sms/m-1234", "RSMA-1234-5678"])
    func kept(_ text: String) {
        #expect(PhoneMasking.mask(text) == text)
    }
}
