import Foundation
@testable import GatewayServer
import SENSMock
import Signing
@testable import SENSClient
import Store
import Testing
import Yams

@Suite("Operations")
struct OperationsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func documents(_ relative: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: Self.repository.appendingPathComponent(relative), encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    @Test("the Kubernetes manifests parse as YAML with the kinds a deployment needs")
    func manifestKinds() throws {
        let directory = Self.repository.appendingPathComponent("deploy/k8s")
        var kinds: [String: [String: Any]] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".yaml") {
            for document in try Self.documents("deploy/k8s/" + file) {
                let kind = try #require(document["kind"] as? String, "\(file) has no kind")
                #expect(document["apiVersion"] is String, "\(file)")
                kinds[kind] = document
            }
        }
        #expect(Set(kinds.keys).isSuperset(of: [
            "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Secret", "PrometheusRule", "ConfigMap",
        ]))

        let deployment = try #require(kinds["Deployment"])
        let pod = try #require(((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        #expect(((container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String == "/healthz")
        #expect(((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String == "/readyz")
        let security = try #require(container["securityContext"] as? [String: Any])
        #expect(security["readOnlyRootFilesystem"] as? Bool == true)
        #expect(security["allowPrivilegeEscalation"] as? Bool == false)
        #expect((pod["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        let resources = try #require(container["resources"] as? [String: Any])
        #expect(resources["requests"] != nil && resources["limits"] != nil)
        let volumes = try #require(pod["volumes"] as? [[String: Any]])
        #expect(volumes.contains { $0["secret"] != nil })
        let args = try #require(container["args"] as? [String])
        #expect(args.contains("--secret-key-file"))
        // The example secret holds placeholders only.
        let secret = try #require(kinds["Secret"]?["stringData"] as? [String: String])
        #expect(secret.values.allSatisfy { $0.contains("REPLACE") })
        // The ConfigMap's settings are all settings sensgate knows.
        let config = try #require((kinds["ConfigMap"]?["data"] as? [String: String])?["sensgate.yaml"])
        let settings = try #require(try Yams.load(yaml: config) as? [String: Any])
        #expect(Set(settings.keys).isSubset(of: Set(ConfigurationLoader.keys)))
        // And sensgate's own reader (a strict YAML subset) takes the file as it is shipped.
        let read = try ConfigurationLoader.loadYAML(path: "sensgate.yaml", readFile: { _ in config })
        #expect(Set(read.keys) == Set(settings.keys))
    }

    @Test("the fleet variant: the base plus the PostgreSQL store from a Secret, a password file, at least two replicas")
    func fleetOverlay() throws {
        let kustomization = try #require(try Self.documents("deploy/k8s/fleet/kustomization.yaml").first)
        let resources = try #require(kustomization["resources"] as? [String])
        #expect(resources.contains(".."))
        let patches = try #require(kustomization["patches"] as? [[String: Any]]).compactMap { $0["path"] as? String }
        for file in resources.filter({ $0 != ".." }) + patches {
            #expect(FileManager.default.fileExists(atPath: Self.repository.appendingPathComponent("deploy/k8s/fleet/" + file).path), "\(file)")
        }
        let patch = try #require(try Self.documents("deploy/k8s/fleet/deployment-patch.yaml").first)
        #expect(((patch["spec"] as? [String: Any])?["replicas"] as? Int ?? 0) >= 2)
        let pod = try #require(((patch["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let env = try #require(container["env"] as? [[String: Any]])
        let store = try #require(env.first { $0["name"] as? String == "SENSGATE_STORE" })
        #expect(((store["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any])?["name"] as? String == "sensgate-store")
        let passwordFile = try #require(env.first { $0["name"] as? String == "SENSGATE_STORE_PASSWORD_FILE" }?["value"] as? String)
        let mounts = try #require(container["volumeMounts"] as? [[String: Any]]).compactMap { $0["mountPath"] as? String }
        #expect(mounts.contains { passwordFile.hasPrefix($0 + "/") })
        let secret = try #require(try Self.documents("deploy/k8s/fleet/store-secret.example.yaml").first?["stringData"] as? [String: String])
        #expect(secret.values.allSatisfy { $0.contains("REPLACE") })
        // The URL the example holds is one sensgate takes (once its placeholder is filled in).
        #expect(throws: Never.self) { try StoreLocation(parsing: try #require(secret["url"]).replacingOccurrences(of: "REPLACE-", with: "")) }
        let hpa = try #require(try Self.documents("deploy/k8s/fleet/hpa-patch.yaml").first)
        #expect(((hpa["spec"] as? [String: Any])?["minReplicas"] as? Int ?? 0) >= 2)
    }

    @Test("every series the alert rules use exists in /metrics after traffic; none is labelled with an id or phone number")
    func metricsAndAlerts() async throws {
        try await TestGateway.run(configure: {
            $0.retryPolicy.baseBackoff = .milliseconds(5)
            $0.breakerThreshold = 1
            $0.cacheTTL = .seconds(60)
        }) { gw in
            _ = try await gw.send("GET", "/v1/results/sms/sms-relay-S004")
            _ = try await gw.send("GET", "/v1/results/sms/sms-relay-S004")
            _ = try await gw.send("GET", "/v1/results/brandmessage/bm-unknown-6543")
            _ = try await gw.send("GET", "/v1/results/sms/fault-status-503")
            _ = try await gw.send("GET", "/v1/results/sms/fault-status-401")
            _ = try await gw.send("GET", "/sms/v2/services/s/messages?requestId=RSMA-demo-0001&to=01012345678")
            let text = try await gw.send("GET", "/metrics").text
            for series in [
                "sensgate_build_info", "sensgate_http_requests_total", "sensgate_http_request_duration_seconds_bucket",
                "sensgate_http_requests_in_flight", "sensgate_upstream_request_duration_seconds_bucket", "sensgate_upstream_requests_total",
                "sensgate_upstream_retries_total", "sensgate_delivery_results_total", "sensgate_errors_total", "sensgate_result_cache_total",
            ] {
                #expect(text.contains(series), "\(series) missing")
            }
            #expect(text.contains(#"sensgate_delivery_results_total{channel="sms",namespace="sms.relay",code="S004",class="transient"} 2"#))
            #expect(text.contains(#"code="unknown",class="unknown""#))
            #expect(text.contains(#"sensgate_errors_total{code="upstream_auth_failed"} 1"#))
            #expect(text.contains(#"sensgate_http_requests_total{route="/v1/results",method="GET",status="200",class="transient",caller="anonymous"}"#))
            for forbidden in ["sms-relay-S004", "bm-unknown-6543", "01012345678", "RSMA-demo-0001", "fault-status"] {
                #expect(!text.contains(forbidden))
            }
            // Every sensgate_* name an alert uses is one the gateway exports (or will, once the event happens).
            let rules = try #require(try Self.documents("deploy/k8s/prometheusrule.yaml").first)
            let groups = try #require((rules["spec"] as? [String: Any])?["groups"] as? [[String: Any]])
            let expressions = groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.compactMap { $0["expr"] as? String }
            #expect(expressions.count >= 7)
            let exported = text + "\nsensgate_circuit_breaker_opened_total\nsensgate_upstream_refused_total\nsensgate_webhook_deliveries_total\nsensgate_store_errors_total\nsensgate_idempotency_total\n"
            for expression in expressions {
                for name in expression.matches(of: /sensgate_[a-z_]+/).map({ String($0.output) }) {
                    #expect(exported.contains(name), "\(name) in an alert is not exported")
                }
            }
        }
    }

    @Test("the systemd unit passes systemd-analyze verify (where systemd-analyze is installed)")
    func systemdUnit() async throws {
        let unit = try String(contentsOf: Self.repository.appendingPathComponent("deploy/systemd/sensgate.service"), encoding: .utf8)
        #expect(unit.contains("LoadCredential=ncp-secret:"))
        #expect(unit.contains("NoNewPrivileges=yes") && unit.contains("ProtectSystem=strict") && unit.contains("DynamicUser=yes"))
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sensgate-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // verify checks that ExecStart's binary exists: point it at the one just built.
        let path = directory.appendingPathComponent("sensgate.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/sensgate", with: try sensgateExecutable().path).write(to: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", path.path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
    }

    @Test("the Dockerfile is multi-stage, release-built, and runs as a non-root user")
    func dockerfile() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        let stages = text.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count == 2)
        #expect(text.contains("swift build -c release"))
        #expect(text.contains("libcurl4"))
        #expect(text.contains("USER 10001"))
        #expect(text.contains("COPY --from=build"))
    }
}

@Suite("Command-line helpers")
struct HelperCommandTests {
    @Test("explain: namespace, class, retryable and description; exit 1 for an unknown code")
    func explain() async throws {
        let known = try await CommandLineTests.sensgate(["explain", "sms", "S004"])
        #expect(known.status == 0)
        #expect(known.stdout.contains("namespace: sms.relay"))
        #expect(known.stdout.contains("class: transient"))
        #expect(known.stdout.contains("retryable: true"))
        let kakao = try await CommandLineTests.sensgate(["explain", "alimtalk", "3005"])
        #expect(kakao.stdout.contains("class: unknown") && kakao.stdout.contains("retryable: false"))
        let failover = try await CommandLineTests.sensgate(["explain", "failover", "E4002"])
        #expect(failover.stdout.contains("class: permanent"))
        let unknown = try await CommandLineTests.sensgate(["explain", "sms", "9999"])
        #expect(unknown.status == 1)
        #expect(unknown.stdout.contains("known: false"))
        let bad = try await CommandLineTests.sensgate(["explain", "fax", "1"])
        #expect(bad.status == 2)
        let help = try await CommandLineTests.sensgate(["explain", "--help"])
        #expect(help.status == 0 && help.stdout.contains("namespace"))
    }

    @Test("sign prints the three headers, matching an independently computed signature")
    func sign() async throws {
        let run = try await CommandLineTests.sensgate(
            ["sign", "GET", "/sms/v2/services/ncp:sms:kr:50*********1:sens/messages/f574d3f0-****-****-****-daa31f50eaf5",
             "--timestamp", "1700000000000", "--access-key", "AKIDEXAMPLE"],
            environment: ["NCP_SECRET_KEY": "secretKeyValue"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == """
            x-ncp-apigw-timestamp: 1700000000000
            x-ncp-iam-access-key: AKIDEXAMPLE
            x-ncp-apigw-signature-v2: t1cSJBuheVEKahzPkFDAJPZeVj2T0BXvoEUiBS1FwBI=

            """)
        #expect(!run.stdout.contains("secretKeyValue"))
        let missing = try await CommandLineTests.sensgate(["sign", "GET", "/x"], environment: ["NCP_ACCESS_KEY": "AK"])
        #expect(missing.status == 2)
        let help = try await CommandLineTests.sensgate(["sign", "--help"])
        #expect(help.status == 0)
    }

    @Test("lookup does one signed lookup and prints the unified JSON; errors go to stderr with exit 1")
    func lookup() async throws {
        let mock = SENSMock(accessKey: "AK", secretKey: SecretKey("lookup-secret"))
        let port = try await mock.start()
        let environment = ["NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "lookup-secret", "SENSGATE_UPSTREAM": "http://127.0.0.1:\(port)"]
        let found = try await CommandLineTests.sensgate(
            ["lookup", "brandmessage", "bm-failover-delivered", "--service-id", "ncp:kkobizmsg:kr:1:x", "--raw"], environment: environment)
        #expect(found.status == 0, "\(found.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(found.stdout.utf8)) as? [String: Any])
        #expect(json["deliveredVia"] as? String == "sms")
        #expect(json["raw"] is [String: Any])
        #expect(mock.receivedRequests.last?.signatureValid == true)

        let missing = try await CommandLineTests.sensgate(["lookup", "sms", "nope", "--sms-service-id", "ncp:sms:kr:1:x"], environment: environment)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("not_found"))
        let noService = try await CommandLineTests.sensgate(["lookup", "sms", "nope"], environment: environment)
        #expect(noService.status == 1)
        #expect(noService.stderr.contains("invalid_request"))
        let help = try await CommandLineTests.sensgate(["lookup", "--help"])
        #expect(help.status == 0)
        await mock.stop()
    }

    @Test("serve on a non-loopback address without caller tokens prints a warning")
    func nonLoopbackWarning() async throws {
        let process = Process()
        process.executableURL = try sensgateExecutable()
        process.arguments = ["serve", "--listen", "0.0.0.0:0"]
        process.environment = [
            "NCP_ACCESS_KEY": "AK", "NCP_SECRET_KEY": "s", "SENSGATE_DATA_DIR": NSTemporaryDirectory() + "sensgate-\(UUID().uuidString)",
        ]
        // Its stderr in a file, read until the warning is there (or serve has long been serving).
        let errorsPath = NSTemporaryDirectory() + "sensgate-stderr-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: errorsPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorsPath) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorsPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var text = ""
        for _ in 0..<750 where !text.contains("caller tokens") {
            try await Task.sleep(for: .milliseconds(20))
            text = (try? String(contentsOfFile: errorsPath, encoding: .utf8)) ?? ""
        }
        process.terminate()
        process.waitUntilExit()
        #expect(text.contains("warning") && text.contains("caller tokens"))
    }
}
