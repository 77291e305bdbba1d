import ArgumentParser
import GatewayServer
import Signing
import UpstreamClient

/// `sensgate lookup`: one signed lookup from a shell, printed as the unified JSON.
struct Lookup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look one message's delivery result up in SENS and print the unified JSON.",
        discussion: """
            Uses the same settings as serve (flags, environment, --config) and the same path as \
            GET /v1/results/{channel}/{messageId}: signing, retries, normalization, classification. \
            Exits 0 with the result, 1 with the error envelope on stderr, 2 for a bad setting.
            """
    )

    @Argument(help: "sms, brandmessage or alimtalk.")
    var channel: String
    @Argument(help: "The SENS message ID.")
    var messageId: String
    @Option(name: .customLong("service-id"), help: "The SENS service ID (default: the one configured for the channel).")
    var serviceId: String?
    @Flag(name: .customLong("raw"), help: "Add SENS's own JSON under \"raw\".")
    var includeRaw = false
    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let configuration = try self.settings.resolveOrExit()
        let gateway = try Gateway(configuration: configuration, logger: LogSetup.quiet())
        let outcome = await gateway.lookup(channel: self.channel, messageId: self.messageId, serviceId: self.serviceId, includeRaw: self.includeRaw)
        await gateway.upstream.shutdown()
        switch outcome {
        case .success(let json):
            Console.out(JSONPretty.format(json))
        case .failure(let error):
            Console.errorText(JSONPretty.format(error.envelope(requestID: nil)))
            throw ExitCode(1)
        }
    }
}

/// `sensgate sign`: the three NCP headers for a manual curl.
struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the three NCP API Gateway v2 headers for one request, for a manual curl.",
        discussion: """
            The path is the exact request-target, query included (e.g. '/sms/v2/services/ID/messages?requestId=R'). \
            The keys come from the same settings as serve. The signature is valid for five minutes.
            """
    )

    @Argument(help: "The HTTP method (GET, POST, …).")
    var method: String
    @Argument(help: "The request-target: path plus ?query, exactly as it will be sent.")
    var path: String
    @Option(help: "Sign at this Unix time in milliseconds instead of now.")
    var timestamp: Int64?
    @OptionGroup var settings: SettingsOptions

    func validate() throws {
        guard self.path.hasPrefix("/") else { throw ValidationError("the path must start with '/'") }
        guard !self.method.isEmpty, self.method.allSatisfy({ $0.isLetter }) else { throw ValidationError("'\(self.method)' is not an HTTP method") }
    }

    func run() throws {
        let configuration = try self.settings.resolveOrExit()
        let signer = Signer(accessKey: configuration.accessKey, secretKey: configuration.secretKey)
        let headers = signer.sign(method: self.method.uppercased(), target: self.path, epochMilliseconds: self.timestamp ?? Signer.nowMilliseconds())
        print("\(SignatureHeader.timestamp): \(headers.timestamp)")
        print("\(SignatureHeader.accessKey): \(headers.accessKey)")
        print("\(SignatureHeader.signature): \(headers.signature)")
    }
}

/// Indents JSON for people, keeping its key order.
enum JSONPretty {
    static func format(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        func newline() {
            out.append(UInt8(ascii: "\n"))
            out += Array(repeating: UInt8(ascii: " "), count: depth * 2)
        }
        for (index, byte) in bytes.enumerated() {
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(byte)
                depth += 1
                // Keep empty containers on one line.
                let next = bytes[(index + 1)...].first { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }
                if next != UInt8(ascii: "}") && next != UInt8(ascii: "]") { newline() }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if let last = out.last, last != UInt8(ascii: "{") && last != UInt8(ascii: "[") { newline() }
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline()
            case UInt8(ascii: ":"):
                out += [UInt8(ascii: ":"), UInt8(ascii: " ")]
            case 0x20, 0x0A, 0x0D, 0x09:
                continue
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
