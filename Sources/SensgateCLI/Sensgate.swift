// SensgateCLI: the `sensgate` command — serve the gateway, run the demo, and operator helpers.

import ArgumentParser
import Foundation
import GatewayServer

@main
struct Sensgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sensgate",
        abstract: "A signing, normalizing gateway in front of Naver Cloud SENS.",
        version: sensgateVersion,
        subcommands: [Serve.self, Demo.self, Mock.self, Lookup.self, Sign.self, Explain.self, Codes.self]
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
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Writes to standard error without buffering, one line at a time.
enum Console {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data(("sensgate: " + line + "\n").utf8))
    }

    static func out(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
