// libFuzzer harness: the YAML subset that reads the config and caller tokens files (at start and on every reload,
// so a crash here would take the gateway down).
//
// Any input: no crash, no hang, the same answer twice. An input it accepts: no key twice in a mapping, and writing
// the value back out (every scalar double-quoted and escaped) reads back as the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzYAMLSubset(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let first = Result { () throws(YAMLSubset.ParseError) in try YAMLSubset.parse(text) }
    let second = Result { () throws(YAMLSubset.ParseError) in try YAMLSubset.parse(text) }
    switch (first, second) {
    case (.success(let a), .success(let b)) where a == b: break
    case (.failure(let a), .failure(let b)) where a == b: return 0
    default: fatalError("two readings of one text differ")
    }
    guard case .success(let node) = first else { return 0 }
    check(node)
    if node == .null { return 0 }  // an empty document: nothing to write back
    var lines: [String] = []
    emit(node, indent: 0, into: &lines)
    let written = lines.joined(separator: "\n") + "\n"
    guard let again = try? YAMLSubset.parse(written) else { fatalError("could not read back what was written:\n\(written)") }
    guard again == node || (node == .mapping([]) && again == .null) else { fatalError("read back a different value:\n\(written)") }
    return 0
}

private func check(_ node: YAMLSubset.Node) {
    switch node {
    case .mapping(let entries):
        if Set(entries.map(\.key)).count != entries.count { fatalError("a key twice in one mapping") }
        for entry in entries { check(entry.value) }
    case .list(let items):
        for item in items { check(item) }
    case .null, .scalar:
        break
    }
}

private func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

private func inline(_ node: YAMLSubset.Node) -> String {
    switch node {
    case .null: "~"
    case .scalar(let text): quoted(text)
    case .list(let items) where items.isEmpty: "[]"
    default: fatalError("not an inline value")
    }
}

private func emit(_ node: YAMLSubset.Node, indent: Int, into lines: inout [String]) {
    let pad = String(repeating: " ", count: indent)
    switch node {
    case .mapping(let entries):
        for (key, value) in entries {
            switch value {
            case .mapping(let inner) where !inner.isEmpty:
                lines.append(pad + quoted(key) + ":")
                emit(value, indent: indent + 2, into: &lines)
            case .list(let items) where !items.isEmpty:
                lines.append(pad + quoted(key) + ":")
                emit(value, indent: indent + 2, into: &lines)
            case .mapping:
                lines.append(pad + quoted(key) + ": ~")  // an empty mapping is not expressible; only a top level can be one
            default:
                lines.append(pad + quoted(key) + ": " + inline(value))
            }
        }
    case .list(let items):
        for item in items { lines.append(pad + "- " + inline(item)) }
    default:
        lines.append(pad + inline(node))
    }
}
