// DeliveryResults: SENS's SMS, Brand Message and AlimTalk results normalized into one classified schema (pure, no I/O).

/// How a delivery outcome should be treated by a caller.
public enum CodeClass: String, Sendable, CaseIterable, Comparable {
    /// Delivered.
    case success
    /// Not delivered, but may succeed if sent again later.
    case transient
    /// Will not succeed as sent.
    case permanent
    /// Not finished yet.
    case pending
    /// A code in no table, or delivery uncertain: never retry automatically.
    case unknown

    /// Rank for choosing a result's class from its attempts: `success > pending > unknown > transient > permanent`.
    public var rank: Int {
        switch self {
        case .success: 4
        case .pending: 3
        case .unknown: 2
        case .transient: 1
        case .permanent: 0
        }
    }

    public static func < (lhs: CodeClass, rhs: CodeClass) -> Bool { lhs.rank < rhs.rank }
}

/// The code tables SENS documents, one per kind of code.
public enum CodeNamespace: String, Sendable, CaseIterable {
    /// SMS IB G/W report codes (carrier delivery result).
    case smsReport = "sms.report"
    /// SMS IB G/W response codes (relay gateway).
    case smsRelay = "sms.relay"
    /// SMS IB EMMA codes (EMMA processing).
    case smsEmma = "sms.emma"
    /// AlimTalk / Brand Message reception codes.
    case kakao
    /// SMS alternative-delivery (failover) request status codes.
    case failover

    /// The SMS tables, in the order a bare SMS status code is looked up.
    public static let sms: [CodeNamespace] = [.smsReport, .smsRelay, .smsEmma]
}

/// One row of the code table.
public struct CodeEntry: Sendable, Equatable {
    public let namespace: CodeNamespace
    public let code: String
    public let codeClass: CodeClass
    public let description: String
}

/// sensgate's code table: every SENS code with its class, loaded once from `codes.csv` (data, not code).
public struct CodeTable: Sendable {
    private struct Key: Hashable {
        let namespace: CodeNamespace
        let code: String
    }

    /// Every row, in file order.
    public let entries: [CodeEntry]
    private let index: [Key: CodeEntry]

    /// The table shipped with sensgate (`Sources/DeliveryResults/codes.csv`, embedded at build time).
    public static let standard: CodeTable = {
        do {
            return try CodeTable(csv: PackageResources.codes_csv)
        } catch {
            // The file is part of the build and checked by tests; a broken one must not start a gateway that
            // would silently classify everything as unknown.
            fatalError("the embedded codes.csv is invalid: \(error)")
        }
    }()

    /// Parses a table from CSV bytes with the header `namespace,code,class,description` (RFC 4180 quoting).
    /// - Throws: ``CodeTableError`` for an unknown namespace or class, a duplicate, or a malformed row.
    public init(csv: some Collection<UInt8>) throws(CodeTableError) {
        let rows = try CSV.parse(Array(csv))
        guard let header = rows.first, header == ["namespace", "code", "class", "description"] else {
            throw CodeTableError(line: 1, reason: "header must be namespace,code,class,description")
        }
        var entries: [CodeEntry] = []
        var index: [Key: CodeEntry] = [:]
        for (offset, row) in rows.dropFirst().enumerated() {
            let line = offset + 2
            guard row.count == 4 else { throw CodeTableError(line: line, reason: "expected 4 fields, found \(row.count)") }
            guard let namespace = CodeNamespace(rawValue: row[0]) else { throw CodeTableError(line: line, reason: "unknown namespace \(row[0])") }
            guard let codeClass = CodeClass(rawValue: row[2]) else { throw CodeTableError(line: line, reason: "unknown class \(row[2])") }
            guard !row[1].isEmpty else { throw CodeTableError(line: line, reason: "empty code") }
            let entry = CodeEntry(namespace: namespace, code: row[1], codeClass: codeClass, description: row[3])
            guard index.updateValue(entry, forKey: Key(namespace: namespace, code: row[1])) == nil else {
                throw CodeTableError(line: line, reason: "duplicate code \(row[0]) \(row[1])")
            }
            entries.append(entry)
        }
        self.entries = entries
        self.index = index
    }

    /// The entry for a code in one namespace.
    public func entry(_ namespace: CodeNamespace, _ code: String) -> CodeEntry? {
        self.index[Key(namespace: namespace, code: code)]
    }

    /// The first entry for a code across several namespaces, in order.
    public func entry(in namespaces: [CodeNamespace], _ code: String) -> CodeEntry? {
        for namespace in namespaces {
            if let entry = self.index[Key(namespace: namespace, code: code)] { return entry }
        }
        return nil
    }

    /// The table as Markdown, for `docs/codes.md`.
    public func markdown() -> String {
        var text = """
            # SENS codes and their classes

            Generated from `Sources/DeliveryResults/codes.csv` by `sensgate codes --markdown`; do not edit by hand.
            A test fails when this file is out of date.

            | class | meaning | `retryable` |
            | --- | --- | --- |
            | `success` | delivered | false |
            | `transient` | not delivered; may succeed if sent again later | true |
            | `permanent` | will not succeed as sent | false |
            | `pending` | not finished yet: look again later | false |
            | `unknown` | a code in no table, or delivery uncertain: never retry automatically | false |

            """
        for namespace in CodeNamespace.allCases {
            let rows = self.entries.filter { $0.namespace == namespace }
            text += "\n## `\(namespace.rawValue)` (\(rows.count) codes)\n\n| code | class | description |\n| --- | --- | --- |\n"
            for row in rows {
                text += "| `\(row.code)` | \(row.codeClass.rawValue) | \(row.description.replacingPipes()) |\n"
            }
        }
        return text
    }
}

/// A row of the code table that cannot be loaded.
public struct CodeTableError: Error, Sendable, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { "codes.csv line \(self.line): \(self.reason)" }
}

extension String {
    fileprivate func replacingPipes() -> String {
        self.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
    }
}

/// A minimal RFC 4180 reader: commas, double-quoted fields with `""` escapes, LF or CRLF line ends.
enum CSV {
    static func parse(_ bytes: [UInt8]) throws(CodeTableError) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var index = 0
        var line = 1
        func endField() {
            row.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
        while index < bytes.count {
            let byte = bytes[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\"") {
                        field.append(byte)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if byte == 0x0A { line += 1 }
                    field.append(byte)
                }
            } else {
                switch byte {
                case UInt8(ascii: ","):
                    endField()
                case UInt8(ascii: "\""):
                    guard field.isEmpty else { throw CodeTableError(line: line, reason: "quote inside an unquoted field") }
                    quoted = true
                case 0x0D:
                    break
                case 0x0A:
                    endField()
                    if row != [""] { rows.append(row) }
                    row.removeAll()
                    line += 1
                default:
                    field.append(byte)
                }
            }
            index += 1
        }
        guard !quoted else { throw CodeTableError(line: line, reason: "unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty {
            endField()
            rows.append(row)
        }
        return rows
    }
}
