import Foundation
import GatewayServer
import Testing
import Yams

/// The documents that describe the contract stay in step with the code.
@Suite("Documentation")
struct DocumentationTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("docs/openapi.yaml is OpenAPI 3.1 and describes every route and every error code")
    func openAPI() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: Any])
        for path in ["/v1/results/{channel}/{messageId}", "/v1/results/{channel}", "/v1/results:batch", "/v1/requests/{requestId}", "/v1/events", "/v1/events/{eventId}:redeliver", "/sms/v2/{rest}", "/healthz", "/readyz", "/metrics"] {
            #expect(paths[path] != nil, "\(path) is not documented")
        }
        let components = try #require(document["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        let envelope = try #require(schemas["ErrorEnvelope"] as? [String: Any])
        let error = try #require((envelope["properties"] as? [String: Any])?["error"] as? [String: Any])
        let code = try #require((error["properties"] as? [String: Any])?["code"] as? [String: Any])
        let documented = Set(try #require(code["enum"] as? [String]))
        #expect(documented == Set(GatewayError.Code.allCases.map(\.rawValue)))
        let result = try #require(schemas["DeliveryResult"] as? [String: Any])
        #expect(Set(try #require(result["required"] as? [String])) == [
            "schema", "channel", "serviceId", "messageId", "requestId", "requestTime", "completeTime", "status", "class", "retryable",
            "deliveredVia", "code", "message", "attempts",
        ])
    }

    @Test("the README keeps its two set-up commands and documents every setting")
    func readme() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(text.contains("bash scripts/install-deps.sh && swift run sensgate demo"))
        #expect(text.contains("bash scripts/install-deps.sh --tests && swift test"))
        for key in ConfigurationLoader.keys where key != "secret-key" {
            #expect(text.contains(key), "README does not mention \(key)")
        }
    }
}
