/// The part of YAML that sensgate's config and caller tokens files use, read without a YAML library.
///
/// The two files need only block mappings, block and flow lists of scalars, plain and quoted scalars, and comments.
/// Reading just that, strictly, is safer for a file of secrets than a general YAML library: a key given twice is an
/// error rather than "last one wins", and values stay text (a token such as `no`, `0x1F` or `1e3` is not turned into a
/// boolean or a number). Anything else — anchors, aliases, tags, block scalars, flow mappings, multi-line scalars,
/// several documents — is refused with the line it is on, never guessed at.
enum YAMLSubset {
    /// A parsed value. Scalars stay text: the settings parse their own types.
    indirect enum Node: Equatable, Sendable {
        case null
        case scalar(String)
        case list([Node])
        case mapping([(key: String, value: Node)])

        static func == (lhs: Node, rhs: Node) -> Bool {
            switch (lhs, rhs) {
            case (.null, .null): true
            case (.scalar(let a), .scalar(let b)): a == b
            case (.list(let a), .list(let b)): a == b
            case (.mapping(let a), .mapping(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
            default: false
            }
        }

        /// The value under `key`, for a mapping.
        subscript(key: String) -> Node? {
            guard case .mapping(let entries) = self else { return nil }
            return entries.first { $0.key == key }?.value
        }
    }

    /// Why a text could not be read, with its 1-based line.
    struct ParseError: Error, Equatable, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(self.line): \(self.reason)" }
    }

    /// Parses one document.
    static func parse(_ text: String) throws(ParseError) -> Node {
        var lines: [Line] = []
        var number = 0
        // Read as Unicode scalars, as YAML is defined (a Swift Character can join a quote or a digit to the combining
        // mark after it), with "\r\n" and a lone "\r" read as "\n".
        var scalars = String.UnicodeScalarView()
        var afterCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\n" && afterCR {
                afterCR = false
                continue
            }
            afterCR = scalar == "\r"
            scalars.append(afterCR ? "\n" : scalar)
        }
        for raw in Substring(String(scalars)).unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let indent = raw.prefix { $0 == " " }.count
            if raw.dropFirst(indent).first == "\t" { throw ParseError(line: number, reason: "tabs cannot indent YAML") }
            var content = Self.stripComment(raw.dropFirst(indent))
            while content.last == " " || content.last == "\t" { content = content.dropLast() }
            if content.isEmpty { continue }
            if indent == 0 && (Self.equals(content, "---") || Self.equals(content, "...")) {
                if lines.isEmpty && Self.equals(content, "---") { continue }
                throw ParseError(line: number, reason: "only one YAML document is read")
            }
            lines.append(Line(number: number, indent: indent, text: content))
        }
        var reader = Reader(lines: lines)
        guard let first = reader.peek else { return .null }
        let node = try reader.block(indent: first.indent)
        if let extra = reader.peek { throw ParseError(line: extra.number, reason: "unexpected indentation") }
        return node
    }

    typealias Text = Substring.UnicodeScalarView

    struct Line {
        var number: Int
        var indent: Int
        var text: Text
    }

    static func equals(_ text: Text, _ literal: String) -> Bool {
        text.elementsEqual(literal.unicodeScalars)
    }

    /// Drops a `#` comment (at the start, or after a space) that is not inside quotes.
    static func stripComment(_ text: Text) -> Text {
        var previous: Unicode.Scalar = " "
        var index = text.startIndex
        while index != text.endIndex {
            let scalar = text[index]
            if scalar == "#" && (previous == " " || previous == "\t") { return text[..<index] }
            if (scalar == "\"" || scalar == "'") && (previous == " " || previous == "[" || previous == "," || previous == ":") {
                // A quote opens only where a value or list item can start; an unclosed one is the scalar's error.
                guard let end = Self.endOfQuoted(text, at: index) else { return text }
                previous = text[text.index(before: end)]
                index = end
                continue
            }
            previous = scalar
            index = text.index(after: index)
        }
        return text
    }

    /// The index just past the quoted string that opens at `start`, or `nil` when it is not closed on the line.
    /// Inside double quotes a backslash escapes the next character; inside single quotes `''` is a quote.
    static func endOfQuoted(_ text: Text, at start: Text.Index) -> Text.Index? {
        let quote = text[start]
        var index = text.index(after: start)
        while index != text.endIndex {
            let scalar = text[index]
            index = text.index(after: index)
            if scalar == "\\" && quote == "\"" {
                guard index != text.endIndex else { return nil }
                index = text.index(after: index)
            } else if scalar == quote {
                guard quote == "'", index != text.endIndex, text[index] == "'" else { return index }
                index = text.index(after: index)
            }
        }
        return nil
    }

    struct Reader {
        let lines: [Line]
        var position = 0

        var peek: Line? { self.position < self.lines.count ? self.lines[self.position] : nil }

        /// A mapping or a list whose entries start at exactly `indent`.
        mutating func block(indent: Int) throws(ParseError) -> Node {
            guard let first = self.peek else { return .null }
            return YAMLSubset.isListItem(first.text) ? try self.list(indent: indent) : try self.mapping(indent: indent)
        }

        mutating func list(indent: Int) throws(ParseError) -> Node {
            var items: [Node] = []
            while let line = self.peek, line.indent == indent, YAMLSubset.isListItem(line.text) {
                self.position += 1
                let rest = line.text.dropFirst().drop { $0 == " " }
                if rest.isEmpty {
                    throw ParseError(line: line.number, reason: "a list item needs a value on the same line")
                }
                if YAMLSubset.splitKey(rest) != nil {
                    throw ParseError(line: line.number, reason: "mappings inside lists are not supported here")
                }
                if rest.first == "[" {
                    throw ParseError(line: line.number, reason: "nested lists are not supported here")
                }
                items.append(try YAMLSubset.value(rest, line: line.number))
            }
            return .list(items)
        }

        mutating func mapping(indent: Int) throws(ParseError) -> Node {
            var entries: [(key: String, value: Node)] = []
            while let line = self.peek, line.indent == indent {
                guard !YAMLSubset.isListItem(line.text) else { throw ParseError(line: line.number, reason: "a list item where a key was expected") }
                guard let (keyText, rest) = YAMLSubset.splitKey(line.text) else {
                    throw ParseError(line: line.number, reason: "expected \"key: value\"")
                }
                let key: String
                switch try YAMLSubset.value(keyText, line: line.number) {
                case .scalar(let text): key = text
                default: throw ParseError(line: line.number, reason: "a key must be a plain or quoted word")
                }
                guard !entries.contains(where: { $0.key == key }) else {
                    throw ParseError(line: line.number, reason: "key \"\(key)\" appears twice")
                }
                self.position += 1
                let value: Node
                if !rest.isEmpty {
                    value = try YAMLSubset.value(rest, line: line.number)
                } else if let next = self.peek, next.indent > indent {
                    value = try self.block(indent: next.indent)
                } else if let next = self.peek, next.indent == indent, YAMLSubset.isListItem(next.text) {
                    value = try self.list(indent: indent)  // YAML lets a key's list start at the key's own column
                } else {
                    value = .null
                }
                entries.append((key, value))
            }
            if let line = self.peek, line.indent > indent {
                throw ParseError(line: line.number, reason: "unexpected indentation")
            }
            return .mapping(entries)
        }
    }

    static func isListItem(_ text: Text) -> Bool {
        text.first == "-" && (text.count == 1 || text.dropFirst().first == " ")
    }

    /// `key: rest` → (key, rest); the colon must be followed by a space or end the line, outside quotes.
    static func splitKey(_ text: Text) -> (Text, Text)? {
        var index = text.startIndex
        if let first = text.first, first == "\"" || first == "'" {
            guard let end = Self.endOfQuoted(text, at: index) else { return nil }
            index = end
        }
        while index != text.endIndex {
            let scalar = text[index]
            if scalar == ":" {
                let after = text.index(after: index)
                if after == text.endIndex || text[after] == " " {
                    return (text[..<index], text[after...].drop { $0 == " " })
                }
            } else if scalar == "[" || scalar == "{" {
                return nil
            }
            index = text.index(after: index)
        }
        return nil
    }

    /// A value on one line: a flow list or a scalar.
    static func value(_ text: Text, line: Int) throws(ParseError) -> Node {
        guard let first = text.first else { return .null }
        switch first {
        case "[":
            guard text.last == "]" else { throw ParseError(line: line, reason: "a [ list must end with ] on the same line") }
            return .list(try Self.flowItems(text.dropFirst().dropLast(), line: line))
        case "{":
            throw ParseError(line: line, reason: "{ } mappings are not supported here; use indented keys")
        case "&", "*", "!", "|", ">", "%", "@", "`":
            throw ParseError(line: line, reason: "YAML feature '\(first)' is not supported here")
        default:
            return try Self.scalar(text, line: line)
        }
    }

    static func flowItems(_ text: Text, line: Int) throws(ParseError) -> [Node] {
        var items: [Node] = []
        var rest = text.drop { $0 == " " }
        while !rest.isEmpty {
            let end: Text.Index
            if let quote = rest.first, quote == "\"" || quote == "'" {
                guard let closed = Self.endOfQuoted(rest, at: rest.startIndex) else {
                    throw ParseError(line: line, reason: "unterminated quoted string")
                }
                end = closed
            } else {
                end = rest.firstIndex(of: ",") ?? rest.endIndex
            }
            var item = rest[..<end]
            while item.last == " " { item = item.dropLast() }
            if item.isEmpty { throw ParseError(line: line, reason: "empty item in a [ ] list") }
            if item.first == "[" || item.first == "{" { throw ParseError(line: line, reason: "nested lists are not supported here") }
            items.append(try Self.scalar(item, line: line))
            rest = rest[end...].drop { $0 == " " }
            if rest.first == "," {
                rest = rest.dropFirst().drop { $0 == " " }
                if rest.isEmpty { throw ParseError(line: line, reason: "empty item in a [ ] list") }
            } else if !rest.isEmpty {
                throw ParseError(line: line, reason: "expected , between list items")
            }
        }
        return items
    }

    static func scalar(_ text: Text, line: Int) throws(ParseError) -> Node {
        guard let first = text.first else { return .null }
        if first == "'" || first == "\"" {
            guard text.count >= 2, text.last == first else { throw ParseError(line: line, reason: "unterminated quoted string") }
            return .scalar(first == "'" ? try Self.singleQuoted(text.dropFirst().dropLast(), line: line) : try Self.doubleQuoted(text.dropFirst().dropLast(), line: line))
        }
        let plain = String(text)
        switch plain {
        case "~", "null", "Null", "NULL": return .null
        default: break
        }
        if plain.contains(": ") || plain.hasSuffix(":") { throw ParseError(line: line, reason: "a value cannot contain \": \" unless quoted") }
        return .scalar(plain)
    }

    /// The inside of `'…'`: `''` is a quote, nothing else is special.
    static func singleQuoted(_ inner: Text, line: Int) throws(ParseError) -> String {
        var result = String.UnicodeScalarView()
        var index = inner.startIndex
        while index != inner.endIndex {
            let scalar = inner[index]
            index = inner.index(after: index)
            if scalar == "'" {
                guard index != inner.endIndex, inner[index] == "'" else { throw ParseError(line: line, reason: "text after a quoted string") }
                index = inner.index(after: index)
            }
            result.append(scalar)
        }
        return String(result)
    }

    /// The inside of `"…"`, with JSON's escapes and `\0`.
    static func doubleQuoted(_ inner: Text, line: Int) throws(ParseError) -> String {
        var result = String.UnicodeScalarView()
        var index = inner.startIndex
        while index != inner.endIndex {
            let scalar = inner[index]
            index = inner.index(after: index)
            if scalar == "\"" { throw ParseError(line: line, reason: "text after a quoted string") }
            guard scalar == "\\" else {
                result.append(scalar)
                continue
            }
            guard index != inner.endIndex else { throw ParseError(line: line, reason: "a backslash ends the string") }
            let escape = inner[index]
            index = inner.index(after: index)
            switch escape {
            case "\"", "\\", "/": result.append(escape)
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            case "0": result.append("\0")
            case "u":
                let digits = inner[index...].prefix(4)
                guard digits.count == 4, digits.allSatisfy(\.properties.isASCIIHexDigit),
                    let value = UInt32(String(digits), radix: 16), let decoded = Unicode.Scalar(value)
                else {
                    throw ParseError(line: line, reason: "bad \\u escape")
                }
                result.append(decoded)
                index = digits.endIndex
            default:
                throw ParseError(line: line, reason: "unsupported escape \\\(escape)")
            }
        }
        return String(result)
    }
}
