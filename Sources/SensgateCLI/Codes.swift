import ArgumentParser
import DeliveryResults

/// `sensgate codes`: prints the code table (the source of `docs/codes.md`).
struct Codes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print sensgate's SENS code table with classes.",
        discussion: "docs/codes.md is this command's --markdown output; a test fails when the two differ."
    )

    @Flag(help: "Markdown, as in docs/codes.md (the default is one tab-separated line per code).")
    var markdown = false

    func run() throws {
        let table = CodeTable.standard
        if self.markdown {
            print(table.markdown(), terminator: "")
            return
        }
        for entry in table.entries {
            print([entry.namespace.rawValue, entry.code, entry.codeClass.rawValue, entry.description].joined(separator: "\t"))
        }
    }
}

/// `sensgate explain <channel|namespace> <code>`: what a SENS code means and how to treat it.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain a SENS code: namespace, class, retryable, description.",
        discussion: """
            The first argument is a channel (sms, brandmessage, alimtalk: SMS codes are searched in sms.report, \
            sms.relay, sms.emma; Kakao codes in kakao) or a namespace (sms.report, sms.relay, sms.emma, kakao, failover).
            Exits 1 when the code is in no table.
            """
    )

    @Argument(help: "sms, brandmessage, alimtalk, or a namespace.")
    var scope: String
    @Argument(help: "The code, e.g. 3018, S004, E4002.")
    var code: String

    func run() throws {
        let namespaces: [CodeNamespace]
        switch self.scope {
        case "sms": namespaces = CodeNamespace.sms
        case "brandmessage", "alimtalk", "kakao": namespaces = [.kakao]
        default:
            guard let namespace = CodeNamespace(rawValue: self.scope) else {
                throw ValidationError("'\(self.scope)' is not a channel (sms, brandmessage, alimtalk) or a namespace (\(CodeNamespace.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            namespaces = [namespace]
        }
        guard let entry = CodeTable.standard.entry(in: namespaces, self.code) else {
            print("namespace: \(namespaces.map(\.rawValue).joined(separator: " | "))")
            print("code: \(self.code)")
            print("known: false")
            print("class: unknown")
            print("retryable: false")
            print("description: not in sensgate's code table; treat as unknown and do not retry automatically")
            throw ExitCode(1)
        }
        print("namespace: \(entry.namespace.rawValue)")
        print("code: \(entry.code)")
        print("known: true")
        print("class: \(entry.codeClass.rawValue)")
        print("retryable: \(entry.codeClass == .transient)")
        print("description: \(entry.description)")
    }
}
