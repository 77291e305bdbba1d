import ArgumentParser
import FoundationEssentials
import GatewayServer
import SENSMock
import Signing
import UnixSignals

/// `sensgate mock`: the local SENS-compatible upstream on its own, for soak tests, benchmarks and trying things by hand.
struct Mock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the local SENS-compatible upstream (signature-verifying, with fixtures and faults) on loopback.",
        discussion: """
            It accepts the key pair in NCP_ACCESS_KEY and NCP_SECRET_KEY (or --secret-key-file), serves the fixtures \
            of `sensgate demo`, and fails on purpose for message ids like fault-status-503, fault-delay-2000, fault-reset. \
            Sends (POST …/messages with "messages":[{"to":…}]) are READY, then PROCESSING, then complete after \
            --delivery-delay; the recipient's last four digits pick the outcome: an SMS report code (3018, 2003, …) or a \
            Kakao message code (3019, 3020, …) fails with that code, 9999 never completes, anything else is delivered; a \
            Kakao message that fails with useSmsFailover falls back to an SMS (delivered, or failed with the four digits \
            before the last four when they are an SMS report code).
            """
    )

    @Option(name: .customLong("delivery-delay"), help: "Seconds a send takes to complete (default 3).")
    var deliveryDelay: Double = 3

    @Option(help: "host:port to listen on.")
    var listen = "127.0.0.1:9080"
    @Option(name: .customLong("secret-key-file"), help: "File holding the secret key (else NCP_SECRET_KEY).")
    var secretKeyFile: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let accessKey = environment["NCP_ACCESS_KEY"], !accessKey.isEmpty else {
            Console.error("the mock needs NCP_ACCESS_KEY (the access key it accepts)")
            throw ExitCode(2)
        }
        var secret = SecretKey(environment["NCP_SECRET_KEY"] ?? "")
        if let path = self.secretKeyFile {
            do throws(ConfigurationError) {
                secret = try ConfigurationLoader.readSecretKey(path: path)
            } catch {
                Console.error(error.message)
                throw ExitCode(2)
            }
        }
        guard !secret.isEmpty else {
            Console.error("the mock needs NCP_SECRET_KEY or --secret-key-file")
            throw ExitCode(2)
        }
        let host: String
        let port: Int
        do {
            (host, port) = try ConfigurationLoader.parseListen(self.listen)
        } catch {
            Console.error(error.description)
            throw ExitCode(2)
        }
        guard self.deliveryDelay >= 0, self.deliveryDelay <= 86_400 else {
            Console.error("--delivery-delay must be seconds from 0 to 86400")
            throw ExitCode(2)
        }
        let mock = SENSMock(accessKey: accessKey, secretKey: secret, deliveryDelay: .milliseconds(Int64(self.deliveryDelay * 1000)))
        let bound = try await mock.start(host: host, port: port)
        Console.out("sensgate mock: SENS-compatible upstream on http://\(host):\(bound) (Ctrl-C to stop)")
        // Serve until SIGINT or SIGTERM.
        for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { break }
        await mock.stop()
    }
}
