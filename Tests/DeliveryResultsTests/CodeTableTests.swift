import DeliveryResults
import JSON
import Foundation
import Testing

@Suite("Code table")
struct CodeTableTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("every row of codes.csv loads, with one of the five classes")
    func everyRowLoads() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("Sources/DeliveryResults/codes.csv"), encoding: .utf8)
        let dataLines = text.split(separator: "\n").dropFirst().filter { !$0.isEmpty }
        let table = CodeTable.standard
        #expect(table.entries.count == dataLines.count)
        for entry in table.entries {
            #expect(CodeClass.allCases.contains(entry.codeClass))
            #expect(!entry.description.isEmpty)
        }
        // One row per namespace as the seeds give them (spot checks against the seed documents).
        #expect(table.entry(.smsReport, "3018")?.codeClass == .permanent)
        #expect(table.entry(.smsReport, "0")?.codeClass == .success)
        #expect(table.entry(.smsRelay, "S004")?.codeClass == .transient)
        #expect(table.entry(.smsEmma, "E915")?.codeClass == .permanent)
        #expect(table.entry(.kakao, "0000")?.codeClass == .success)
        #expect(table.entry(.kakao, "3005")?.codeClass == .unknown)
        #expect(table.entry(.failover, "E5000")?.codeClass == .transient)
        #expect(table.entry(.kakao, "A000") == nil)
    }

    @Test("quoted fields keep their commas and quotes")
    func quoting() throws {
        #expect(CodeTable.standard.entry(.smsEmma, "E902")?.description == "For broadcast messages, mo order of recipient numbers")
        let table = try CodeTable(csv: Array("namespace,code,class,description\r\nkakao,1,success,\"a \"\"b\"\", c\"\r\n".utf8))
        #expect(table.entry(.kakao, "1")?.description == #"a "b", c"#)
    }

    @Test("a bad table is refused with the line that is wrong")
    func badTables() {
        let header = "namespace,code,class,description\n"
        for (body, line) in [("kakao,1,maybe,x\n", 2), ("sms.x,1,success,x\n", 2), ("kakao,1,success,x\nkakao,1,success,y\n", 3), ("kakao,1\n", 2)] {
            #expect {
                _ = try CodeTable(csv: Array((header + body).utf8))
            } throws: { error in
                (error as? CodeTableError)?.line == line
            }
        }
        #expect(throws: CodeTableError.self) { _ = try CodeTable(csv: Array("code,namespace\n".utf8)) }
    }

    @Test("the SMS tables are searched report, relay, EMMA; the rank order is success > pending > unknown > transient > permanent")
    func order() {
        #expect(CodeNamespace.sms == [.smsReport, .smsRelay, .smsEmma])
        #expect(CodeClass.allCases.sorted(by: >) == [.success, .pending, .unknown, .transient, .permanent])
    }

    @Test("docs/codes.md is generated from the table and up to date (regenerate: swift run sensgate codes --markdown > docs/codes.md)")
    func docsFresh() throws {
        let document = try String(contentsOf: Self.repository.appendingPathComponent("docs/codes.md"), encoding: .utf8)
        #expect(document == CodeTable.standard.markdown())
    }
}

@Suite("Korea time")
struct KoreanTimeTests {
    static let cases: [(String, String?)] = [
        ("2025-11-25 10:17:00", "2025-11-25T10:17:00+09:00"),
        ("2025-11-28T11:21:06.317", "2025-11-28T11:21:06.317+09:00"),
        ("2025-11-28T11:21:06", "2025-11-28T11:21:06+09:00"),
        ("2025-11-28 11:21:06.5", "2025-11-28T11:21:06.5+09:00"),
        ("2025-11-28T11:21:06Z", "2025-11-28T11:21:06Z"),
        ("2025-11-28T11:21:06.1+09:00", "2025-11-28T11:21:06.1+09:00"),
        ("2025-13-28 11:21:06", nil),
        ("2025-11-28 25:21:06", nil),
        ("2025/11/28 11:21:06", nil),
        ("2025-11-28", nil),
        ("2025-11-28 11:21:06.", nil),
        ("2025-11-28 11:21:06 KST", nil),
        ("", nil),
    ]

    @Test("SENS's offset-less Korea time becomes RFC 3339 +09:00, fractions kept", arguments: cases)
    func convert(_ input: String, _ expected: String?) {
        #expect(KoreanTime.rfc3339(input) == expected)
    }
}

@Suite("JSON")
struct JSONTests {
    @Test("valid documents parse, keys in order, numbers as written")
    func valid() throws {
        let value = try JSONValue.parse(Array(#" {"b":1.50,"a":[true,false,null,"x\"\u00e9\ud83d\ude00\n"],"c":{}, "d":-0e+2} "#.utf8))
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["b", "a", "c", "d"])
        #expect(value["b"] == .number("1.50"))
        #expect(value["d"] == .number("-0e+2"))
        #expect(value["a"] == .array([.bool(true), .bool(false), .null, .string("x\"é😀\n")]))
        #expect(value["c"] == .object([]))
        #expect(value["missing"] == nil)
    }

    static let invalid = [
        "", "{", "}", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "01", "1.", "-", "1e", "\"\\x\"", "\"\u{01}\"", "\"\\ud800\"",
        "\"\\udc00\"", "tru", "nul", "[1 2]", "{\"a\":1,}", "\"abc", "[]]", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ]

    @Test("invalid documents are refused, deep nesting included", arguments: invalid)
    func invalidDocuments(_ text: String) {
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("the writer escapes what JSON requires and round-trips through Foundation")
    func writer() throws {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("s")
        writer.string("a\"b\\c\n\u{01}é")
        writer.key("n")
        writer.null()
        writer.key("list")
        writer.beginArray()
        writer.int(1)
        writer.bool(false)
        writer.endArray()
        writer.endObject()
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: Any])
        #expect(parsed["s"] as? String == "a\"b\\c\n\u{01}é")
        #expect(parsed["n"] is NSNull)
        #expect((parsed["list"] as? [Any])?.count == 2)
    }
    @Test("the writer's integers and millisecond numbers", arguments: [
        (0.0, "0"), (1.5, "1.5"), (0.05, "0.05"), (12.345, "12.345"), (7.0004, "7"), (-0.25, "-0.25"), (-3.5, "-3.5"),
        (0.0006, "0.001"), (123_456.7, "123456.7"),
    ])
    func writerNumbers(_ value: Double, _ text: String) {
        var writer = JSONWriter()
        writer.number(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == text)
    }

    @Test("the writer's integers, both ends of Int included", arguments: [0, 7, -7, 10, 1_000_000, Int.max, Int.min])
    func writerIntegers(_ value: Int) {
        var writer = JSONWriter()
        writer.int(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
    }

    @Test("commas stay right through nesting deeper than the writer's 64-level bit stack")
    func writerDeepNesting() {
        var writer = JSONWriter()
        let depth = 70
        for _ in 0..<depth {
            writer.beginArray()
            writer.int(1)
        }
        for _ in 0..<depth {
            writer.endArray()
            writer.int(2)
        }
        // [1,[1,…[1],2],2…: every value after another at its level, and only there, follows a comma.
        let expected = String(repeating: "[1,", count: depth - 1) + "[1" + String(repeating: "],2", count: depth)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
    }
}
