// SensgateCLI: the `sensgate` command — serve the gateway, run the demo, and operator helpers.

import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import GatewayServer

@main
struct Sensgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensgate",
        abstract: "A signing, normalizing gateway in front of Naver Cloud SENS.",
        version: sensgateVersion,
        subcommands: [Serve.self, Demo.self, Mock.self, Lookup.self, Sign.self, Explain.self, Codes.self, Events.self, Track.self]
    )

    /// Parses and runs a subcommand; a usage error (unknown flag, missing value) is a bad setting: one line, exit 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                Console.error(message(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Writes to standard error and output without buffering, one line at a time.
enum Console {
    static func error(_ line: String) {
        self.write("sensgate: " + line + "\n", to: STDERR_FILENO)
    }

    /// An error envelope or other text for standard error, as it is (no `sensgate:` prefix).
    static func errorText(_ text: String) {
        self.write(text + "\n", to: STDERR_FILENO)
    }

    static func out(_ text: String) {
        self.write(text + "\n", to: STDOUT_FILENO)
    }

    private static func write(_ text: String, to descriptor: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
