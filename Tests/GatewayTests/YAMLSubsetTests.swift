@testable import GatewayServer
import Testing
import Yams

/// sensgate reads its two YAML files with ``YAMLSubset`` (no Yams, Foundation or ICU in the binary). These tests hold
/// it to what a real YAML library reads from the same text, and check that everything outside the subset is refused
/// rather than misread.
@Suite("YAML subset")
struct YAMLSubsetTests {
    /// Yams's reading of a document, in the subset's terms (scalars as text, as the subset keeps them).
    static func reference(_ text: String) throws -> YAMLSubset.Node {
        func convert(_ node: Yams.Node) throws -> YAMLSubset.Node {
            switch node {
            case .scalar(let scalar):
                return node.null != nil ? .null : .scalar(scalar.string)
            case .sequence(let sequence):
                return .list(try sequence.map(convert))
            case .mapping(let mapping):
                return .mapping(try mapping.map { pair in (try #require(pair.key.string), try convert(pair.value)) })
            case .alias:
                throw YAMLSubset.ParseError(line: 0, reason: "alias")
            }
        }
        guard let node = try Yams.compose(yaml: text) else { return .null }
        return try convert(node)
    }

    static let accepted = [
        "listen: 0.0.0.0:8080\nupstream: https://sens.apigw.ntruss.com\n",
        "# settings\nlisten: \"127.0.0.1:9000\"   # quoted, with a comment\nlog-level: 'info'\n\n",
        "cache-ttl: 30s\nretries: 2\nrate: 12.5\nempty:\nnothing: ~\n",
        "---\nkey: value with spaces and # not a comment\n",
        "billing: billing-token-0123456789\nmarketing:\n  token: marketing-token-abcdefghij\n  channels: [brandmessage, alimtalk]\n  prefixes: [\"/brandmessage/v2/services/ncp:kkobizmsg:kr:1:m/\"]\n",
        "svc:\n    token: 'it''s-a-token-0123456789'\n    channels:\n      - sms\n      - alimtalk\nother:\n  token: \"esc\\\"aped\\\\token\\u00e9-0123456789\"\n  channels:\n  - sms\n",
        "a: [ x ,  'y, z' , \"w\" ]\nb: []\nurl: http://host:80/p?q=1#frag\n",
        "",
        "# only a comment\n",
        "key: value\r\nother: 2\r\n",
        "k: \"\\u00e9\u{301}\"\nm: \"a\\\"\u{301}b\"\nn: 'it''\u{301}s'\n",  // an escape or a quote, then a combining mark
        "a: 'x # y, it''s'  # real comment\nb: \"q\\\" # not\" # real\nc: [\"1, #2\", '3'] # real\nd: it's\n",
    ]

    @Test("reads what Yams reads", arguments: Self.accepted)
    func sameAsYams(text: String) throws {
        #expect(try YAMLSubset.parse(text) == (try Self.reference(text)))
    }

    static let refused: [(String, Int)] = [
        ("a: 1\na: 2\n", 2),  // duplicate key
        ("a:\n\tb: 1\n", 2),  // tab indentation
        ("a: &anchor x\nb: *anchor\n", 1),
        ("a: !!str x\n", 1),
        ("a: |\n  block\n", 1),
        ("a: {b: 1}\n", 1),
        ("a: [x, [y]]\n", 1),
        ("a: [x, y\n", 1),
        ("a: \"open\n", 1),
        ("a: b: c\n", 1),
        ("a: 1\n---\nb: 2\n", 2),
        ("- x\n- y: 1\n", 2),
        ("a:\n  b: 1\n c: 2\n", 3),
        ("a: 1\n  b: 2\n", 2),
        ("just text\n", 1),
        ("a: \"x\" trailing\n", 1),
        ("a: \"\\q\"\n", 1),
        ("a:\n- x\n- [y]\n", 3),  // a list in a list
        ("a: \"\\u+041\"\n", 1),  // not four hex digits
    ]

    @Test("refuses what it does not support, naming the line", arguments: Self.refused)
    func refuses(text: String, line: Int) {
        #expect(throws: YAMLSubset.ParseError.self) { try YAMLSubset.parse(text) }
        do {
            _ = try YAMLSubset.parse(text)
        } catch {
            #expect(error.line == line, "\(error)")
        }
    }

    @Test("a list at the key's own column, nested mappings, and lookups by key")
    func structure() throws {
        let node = try YAMLSubset.parse("outer:\n  inner:\n    leaf: v\n  list:\n  - a\n  - 'b'\n")
        #expect(node["outer"]?["inner"]?["leaf"] == .scalar("v"))
        #expect(node["outer"]?["list"] == .list([.scalar("a"), .scalar("b")]))
        #expect(node["missing"] == nil)
    }
}
