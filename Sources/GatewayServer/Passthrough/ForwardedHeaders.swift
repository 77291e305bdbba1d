public import HTTPTypes

/// Decides which caller headers go upstream.
///
/// Dropped: credentials (`x-ncp-*`, `authorization`, `proxy-authorization`, `cookie`), hop-by-hop headers and any
/// header the caller's `Connection` names, and headers curl owns (`host`, `content-length`, `expect`). Also
/// `accept-encoding`, so the body comes back uncompressed and passes through unchanged.
public enum ForwardedHeaders {
    static let dropped: Set<String> = [
        "authorization", "proxy-authorization", "cookie", "host", "content-length", "transfer-encoding", "connection",
        "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect", "accept-encoding", "x-request-id",
        "x-sensgate-token",
    ]

    /// The (name, value) pairs to forward, names in lower case.
    public static func select(from fields: HTTPFields) -> [(String, String)] {
        var connectionTokens: Set<String> = []
        for value in fields[values: .connection] {
            for token in value.split(separator: ",") {
                connectionTokens.insert(token.trimmingASCIIWhitespace.lowercased())
            }
        }
        var selected: [(String, String)] = []
        selected.reserveCapacity(fields.count)
        for field in fields {
            let name = field.name.canonicalName
            if name.hasPrefix("x-ncp-") || Self.dropped.contains(name) || connectionTokens.contains(name) { continue }
            selected.append((name, field.value))
        }
        return selected
    }
}
