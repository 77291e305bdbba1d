import ArgumentParser
import DeliveryResults
import FoundationEssentials
import JSON
import GatewayServer
import Logging
import NIOCore
import SENSMock
import ServiceLifecycle
import UnixSignals
import Signing
import Store
import Synchronization
import UpstreamClient

#if canImport(Glibc)
import Glibc
#endif

/// `sensgate demo`: the local SENS-compatible upstream and the gateway on loopback, a short tour through the
/// gateway, then serving until Ctrl-C.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a local SENS-compatible upstream and the gateway, and show what comes back.",
        discussion: "Nothing leaves this machine: the upstream is sensgate's own mock, with a throw-away key pair."
    )

    @Option(help: "host:port for the gateway (port 0 picks a free one).")
    var listen = "127.0.0.1:8080"
    @Flag(help: "Exit after the tour instead of serving until Ctrl-C.")
    var once = false
    @Option(name: .customLong("log-level"), help: "Log level for the gateway's JSON access log (default warning, so the tour stays readable).")
    var logLevel = "warning"

    func run() async throws {
        guard let level = Logger.Level(rawValue: self.logLevel) else {
            Console.error("log-level \"\(self.logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
            throw ExitCode(2)
        }
        // A fresh key pair for this run only: the demo never sees a real NCP key.
        let accessKey = "DEMO" + Self.randomHex(8).uppercased()
        let secretKey = SecretKey(Self.randomHex(20))
        // Sends complete at the mock after 2 s (the recipient's number picks the outcome).
        let mock = SENSMock(accessKey: accessKey, secretKey: secretKey, deliveryDelay: .seconds(2))
        let mockPort = try await mock.start()
        // A throw-away store and a webhook receiver that verifies each event's signature and prints it.
        let dataDir = "/tmp/sensgate-demo-\(Self.randomHex(6))"
        let store = try await SQLiteStore.open(directory: dataDir, logger: LogSetup.quiet())
        let secretFile = dataDir + "/webhook-secret"
        let secretText = WebhookSecret.generate()
        guard FileManager.default.createFile(atPath: secretFile, contents: Data((secretText + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            Console.error("cannot write \(secretFile)")
            throw ExitCode(1)
        }
        let receiver = WebhookReceiver(secret: secretText) { delivery in Console.out(DemoTour.describe(delivery)) }
        let receiverPort = try await receiver.start()

        let (host, port): (String, Int)
        do {
            (host, port) = try ConfigurationLoader.parseListen(self.listen)
        } catch {
            Console.error(error.description)
            throw ExitCode(2)
        }
        var configuration = GatewayConfiguration(
            accessKey: accessKey, secretKey: secretKey, upstream: "http://127.0.0.1:\(mockPort)", listenHost: host, listenPort: port)
        configuration.smsServiceID = Fixtures.smsServiceID
        configuration.brandMessageServiceID = Fixtures.brandMessageServiceID
        configuration.alimTalkServiceID = Fixtures.alimTalkServiceID
        configuration.logLevel = level
        configuration.webhook = try WebhookTarget.load(
            url: "http://127.0.0.1:\(receiverPort)/sensgate-events", secretFile: secretFile, owner: "demo", readFile: ConfigurationLoader.readTextFile)
        // The spec's first poll is 2 s after acceptance; the demo polls after 1 s to finish sooner.
        configuration.trackSchedule.first = .seconds(1)

        let logger = LogSetup.bootstrapJSON(level: level)
        let gateway = try Gateway(configuration: configuration, logger: logger, store: store)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = gateway.makeApplication { port in portContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let once = self.once
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            let base = "http://127.0.0.1:\(port)"
            Console.out("sensgate demo: SENS-compatible upstream on http://127.0.0.1:\(mockPort), gateway on \(base)\n")
            await DemoTour(gatewayBase: base).run()
            await DemoTour(gatewayBase: base).tracked(receiver: receiver)
            await DemoTour(gatewayBase: base).retried(sendsAtSENS: { mock.acceptedSends })
            if once {
                await group.triggerGracefulShutdown()
            } else {
                Console.out("\nServing on \(base) (upstream http://127.0.0.1:\(mockPort)). Try:")
                Console.out("  curl -s \(base)/v1/results/brandmessage/bm-failover-delivered")
                Console.out("  curl -s '\(base)/v1/results/sms?requestId=RSMA-demo-0002'")
                Console.out("  curl -s -X POST \(base)/v1/results:batch -d '{\"lookups\":[{\"channel\":\"alimtalk\",\"messageId\":\"at-delivered\"}]}'")
                Console.out("  curl -s '\(base)/sms/v2/services/\(Fixtures.smsServiceID)/messages?requestId=RSMA-demo-0001'")
                Console.out("  curl -s -H 'X-Sensgate-Track: true' \(base)/sms/v2/services/\(Fixtures.smsServiceID)/messages -d '{\"type\":\"SMS\",\"from\":\"0212345678\",\"content\":\"hi\",\"messages\":[{\"to\":\"01000003018\"}]}'")
                Console.out("  (a webhook event is printed here when it completes; the last four digits pick the outcome: 3018 fails, 2003 is transient)")
                Console.out("Press Ctrl-C to stop.")
            }
            try await tasks.waitForAll()
        }
        await receiver.stop()
        await mock.stop()
        await store.close()
        try? FileManager.default.removeItem(atPath: dataDir)
        LogWriter.standardOutput.flush()
    }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
        }.joined()
    }
}

/// The calls the demo makes through the gateway, each printed with what came back.
struct DemoTour {
    let gatewayBase: String

    struct Call {
        let title: String
        let method: String
        let target: String
        let body: String?
    }

    var calls: [Call] {
        let sms = Fixtures.smsServiceID
        return [
            Call(title: "Send an SMS through the signed passthrough", method: "POST", target: "/sms/v2/services/\(sms)/messages",
                 body: #"{"type":"SMS","from":"0212345678","content":"Your code is 123456","messages":[{"to":"01012345678"}]}"#),
            Call(title: "SENS's own SMS result (the seed example), passed through unchanged", method: "GET",
                 target: "/sms/v2/services/\(sms)/messages/\(Fixtures.smsSeedMessageID)", body: nil),
            Call(title: "Every message of one SMS request (a query string, signed as sent)", method: "GET",
                 target: "/sms/v2/services/\(sms)/messages?requestId=RSMA-demo-0001", body: nil),
            Call(title: "A path outside the SENS prefixes: answered by the gateway, never forwarded", method: "GET",
                 target: "/admin/keys", body: nil),
        ]
    }

    /// One unified result shown beside the SENS body it came from.
    struct SideBySide {
        let title: String
        let channel: String
        let serviceID: String
        let messageID: String
    }

    var sideBySide: [SideBySide] {
        [
            SideBySide(title: "SMS that failed (the SMS seed: report code 3018)", channel: "sms", serviceID: Fixtures.smsServiceID,
                       messageID: Fixtures.smsSeedMessageID),
            SideBySide(title: "Brand Message delivered (the Brand Message seed)", channel: "brandmessage",
                       serviceID: Fixtures.brandMessageServiceID, messageID: Fixtures.brandMessageSeedMessageID),
            SideBySide(title: "Brand Message that failed over to SMS, delivered by SMS", channel: "brandmessage",
                       serviceID: Fixtures.brandMessageServiceID, messageID: "bm-failover-delivered"),
            SideBySide(title: "SMS still pending", channel: "sms", serviceID: Fixtures.smsServiceID, messageID: "sms-processing-0001"),
        ]
    }

    func run() async {
        let client: UpstreamClient
        do {
            client = try UpstreamClient(configuration: UpstreamConfiguration(baseURL: self.gatewayBase))
        } catch {
            Console.error("cannot reach the gateway: \(error)")
            return
        }
        for (number, call) in self.calls.enumerated() {
            Console.out("── \(number + 1). \(call.title)")
            Console.out("   \(call.method) \(call.target)")
            var headers: [(String, String)] = []
            var body: ByteBuffer? = nil
            if let text = call.body {
                headers.append(("content-type", "application/json"))
                body = ByteBuffer(string: text)
            }
            do {
                let response = try await client.execute(UpstreamRequest(method: call.method, target: call.target, headers: headers, body: body))
                Console.out("   → HTTP \(response.status) \(response.contentType ?? "")")
                Console.out(Self.indent(Self.pretty(response.body)))
            } catch {
                Console.out("   → failed: \(error)")
            }
            Console.out("")
        }
        Console.out("Unified results: what SENS says (through the passthrough) | what sensgate's /v1 says\n")
        for (number, shown) in self.sideBySide.enumerated() {
            let rawTarget = "/\(shown.channel)/v2/services/\(shown.serviceID)/messages/\(shown.messageID)"
            let unifiedTarget = "/v1/results/\(shown.channel)/\(shown.messageID)"
            Console.out("── \(self.calls.count + number + 1). \(shown.title)")
            Console.out("   GET \(rawTarget)  |  GET \(unifiedTarget)")
            do {
                let raw = try await client.execute(UpstreamRequest(method: "GET", target: rawTarget))
                let unified = try await client.execute(UpstreamRequest(method: "GET", target: unifiedTarget))
                Console.out(Self.columns(Self.pretty(raw.body), Self.pretty(unified.body)))
            } catch {
                Console.out("   → failed: \(error)")
            }
            Console.out("")
        }
        await client.shutdown()
    }

    /// Two tracked sends — an SMS, and an AlimTalk to someone without Kakao that falls back to SMS — followed by the
    /// gateway to their final results, each pushed to the demo's webhook receiver as a signed event.
    func tracked(receiver: WebhookReceiver) async {
        guard let client = try? UpstreamClient(configuration: UpstreamConfiguration(baseURL: self.gatewayBase, requestTimeout: .seconds(40))) else { return }
        Console.out("Tracked sends: the gateway follows each to its final result and pushes it to a webhook\n")
        let sends: [(String, String, String)] = [
            ("an SMS, tracked", "/sms/v2/services/\(Fixtures.smsServiceID)/messages",
             #"{"type":"SMS","from":"0212345678","content":"Your parcel is on its way","messages":[{"to":"01012345678"}]}"#),
            ("an AlimTalk to a number without Kakao (…3019), SMS failover on", "/alimtalk/v2/services/\(Fixtures.alimTalkServiceID)/messages",
             #"{"plusFriendId":"@sensgate","templateCode":"ORDER_SHIPPED","messages":[{"to":"01000003019","content":"Your order has shipped","useSmsFailover":true}]}"#),
        ]
        var requestIds: [String] = []
        for (number, send) in sends.enumerated() {
            Console.out("── T\(number + 1). Send \(send.0)")
            Console.out("   POST \(send.1)   X-Sensgate-Track: true")
            do {
                let response = try await client.execute(
                    UpstreamRequest(method: "POST", target: send.1, headers: [("content-type", "application/json"), ("x-sensgate-track", "true")],
                                    body: ByteBuffer(string: send.2)))
                Console.out("   → HTTP \(response.status) \(Self.pretty(response.body).split(separator: "\n").joined(separator: " "))")
                if case .string(let id)? = (try? JSONValue.parse(response.body.readableBytesView))?["requestId"] { requestIds.append(id) }
            } catch {
                Console.out("   → failed: \(error)")
            }
        }
        Console.out("\n   Waiting for SENS to finish (GET /v1/requests/{requestId}?wait=30); events arrive at the webhook as they complete:\n")
        for requestId in requestIds {
            if let answer = try? await client.execute(UpstreamRequest(method: "GET", target: "/v1/requests/\(requestId)?wait=30")),
                case .string(let state)? = (try? JSONValue.parse(answer.body.readableBytesView))?["state"]
            {
                Console.out("   request \(requestId): \(state)")
            }
        }
        // The events go out right after the polls that completed them.
        for _ in 0..<100 where receiver.deliveredIds.count < requestIds.count {
            try? await Task.sleep(for: .milliseconds(100))
        }
        Console.out("")
        await client.shutdown()
    }

    /// A send retried with the same `Idempotency-Key` — as a client does after a timeout — answered from the store,
    /// SENS reached once; and the key reused with another body, refused.
    func retried(sendsAtSENS: @Sendable () -> Int) async {
        guard let client = try? UpstreamClient(configuration: UpstreamConfiguration(baseURL: self.gatewayBase)) else { return }
        Console.out("Idempotent sends: a retried send is answered from the store and never reaches SENS twice\n")
        let target = "/sms/v2/services/\(Fixtures.smsServiceID)/messages"
        let key = "demo-order-\(Demo.randomHex(4))"
        let bodies = [
            #"{"type":"SMS","from":"0212345678","content":"Your order 1001 is confirmed","messages":[{"to":"01012345678"}]}"#,
            #"{"type":"SMS","from":"0212345678","content":"Your order 1001 is confirmed","messages":[{"to":"01012345678"}]}"#,
            #"{"type":"SMS","from":"0212345678","content":"Your order 1002 is confirmed","messages":[{"to":"01012345678"}]}"#,
        ]
        let titles = ["Send with Idempotency-Key: \(key)", "The same send again (a client retrying after a timeout)", "Another body under the same key"]
        let before = sendsAtSENS()
        for (number, (title, body)) in zip(titles, bodies).enumerated() {
            Console.out("── I\(number + 1). \(title)")
            do {
                let response = try await client.execute(
                    UpstreamRequest(
                        method: "POST", target: target, headers: [("content-type", "application/json"), ("idempotency-key", key)],
                        body: ByteBuffer(string: body)))
                Console.out("   → HTTP \(response.status) \(Self.pretty(response.body).split(separator: "\n").joined(separator: " "))")
            } catch {
                Console.out("   → failed: \(error)")
            }
        }
        Console.out("\n   Sends SENS received for these three calls: \(sendsAtSENS() - before) (the second answer came from the store, marked Idempotent-Replayed: true)\n")
        await client.shutdown()
    }

    /// One webhook event as the demo prints it.
    static func describe(_ delivery: WebhookReceiver.Delivery) -> String {
        let data = (try? JSONValue.parse(delivery.body))?["data"]
        func text(_ value: JSONValue?) -> String {
            if case .string(let text)? = value { return text }
            return "–"
        }
        let code = data?["code"]
        return "   ⇢ webhook \(delivery.id ?? "?") (signature \(delivery.signatureValid ? "verified" : "INVALID")): \(text(data?["channel"])) "
            + "\(text(data?["messageId"])) \(text(data?["status"])), class \(text(data?["class"])), delivered via \(text(data?["deliveredVia"])), "
            + "code \(text(code?["namespace"]))/\(text(code?["value"]))"
    }

    /// Two texts in columns, long lines wrapped inside their column.
    static func columns(_ left: String, _ right: String, width: Int = 62) -> String {
        func wrap(_ text: String) -> [String] {
            text.split(separator: "\n", omittingEmptySubsequences: false).flatMap { line -> [String] in
                var rest = Substring(line)
                var pieces: [String] = []
                let indent = String(repeating: " ", count: min(12, line.prefix { $0 == " " }.count + 2))
                var first = true
                repeat {
                    let room = first ? width : width - indent.count
                    pieces.append((first ? "" : indent) + String(rest.prefix(room)))
                    rest = rest.dropFirst(room)
                    first = false
                } while !rest.isEmpty
                return pieces
            }
        }
        let leftLines = wrap(left)
        let rightLines = wrap(right)
        return (0..<max(leftLines.count, rightLines.count)).map { index in
            let l = index < leftLines.count ? leftLines[index] : ""
            let r = index < rightLines.count ? rightLines[index] : ""
            return "   " + l + String(repeating: " ", count: max(0, width - l.count)) + " │ " + r
        }.joined(separator: "\n")
    }

    /// Pretty-prints JSON for people, keeping the key order it came in; anything else is shown as it came.
    static func pretty(_ body: ByteBuffer) -> String {
        let bytes = Array(body.readableBytesView)
        guard (try? JSONValue.parse(bytes[...])) != nil else {
            return String(decoding: bytes, as: UTF8.self)
        }
        return JSONPretty.format(bytes)
    }

    static func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "     " + $0 }.joined(separator: "\n")
    }
}
