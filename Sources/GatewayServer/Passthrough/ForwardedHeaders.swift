public import HTTPTypes

/// Decides which caller headers go upstream: an allowlist (PRODUCT.md §4.5).
///
/// Only `Content-Type`, `Accept`, `Accept-Language` and `User-Agent` are forwarded (the request id is added by the
/// gateway itself). Everything else a caller sends — credentials, `x-ncp-*` in any spelling, `Forwarded`,
/// `X-Original-URL`, hop-by-hop headers, `Accept-Encoding` (so bodies pass through uncompressed) — stays at the
/// gateway: a list of what to drop can always miss a header; a list of what to keep cannot.
public enum ForwardedHeaders {
    static let allowed: [HTTPField.Name] = [.contentType, .accept, .acceptLanguage, .userAgent]

    /// The (name, value) pairs to forward, names in lower case.
    public static func select(from fields: HTTPFields) -> [(String, String)] {
        var selected: [(String, String)] = []
        for name in Self.allowed {
            for value in fields[values: name] { selected.append((name.canonicalName, value)) }
        }
        return selected
    }
}
