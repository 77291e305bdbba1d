public import NIOHTTP1
import UpstreamClient

/// Decides which caller headers go upstream: an allowlist (PRODUCT.md §4.5).
///
/// Only `Content-Type`, `Accept`, `Accept-Language` and `User-Agent` are forwarded (the request id is added by the
/// gateway itself). Everything else a caller sends — credentials, `x-ncp-*` in any spelling, `Forwarded`,
/// `X-Original-URL`, hop-by-hop headers, `Accept-Encoding` (so bodies pass through uncompressed) — stays at the
/// gateway: a list of what to drop can always miss a header; a list of what to keep cannot.
public enum ForwardedHeaders {
    static let allowed: [(match: StaticString, name: String)] = [
        ("content-type", "content-type"), ("accept", "accept"), ("accept-language", "accept-language"), ("user-agent", "user-agent"),
    ]

    /// The (name, value) pairs to forward, names in lower case, in the allowlist's order.
    public static func select(from headers: HTTPHeaders) -> [(String, String)] {
        var selected: [(String, String)] = []
        for (match, name) in Self.allowed {
            for (given, value) in headers where given.equalsIgnoringASCIICase(match) { selected.append((name, value)) }
        }
        return selected
    }
}
