public import Signing
import UpstreamClient

/// Where one caller's events go, and the secret they are signed with (PRODUCT.md §6): from configuration only, never
/// from a request. Checked at start: a bad URL or an unreadable or malformed secret file stops `serve`.
public struct WebhookTarget: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `scheme://host[:port]`: the webhook client's origin.
    public let origin: String
    /// The request-target: path and query.
    public let target: String
    /// The file the secret came from (named in errors; the secret never is).
    public let secretFile: String
    public let secret: WebhookSecret

    /// The URL without its query (a query may carry a receiver's token): safe for logs and errors.
    public var description: String { self.origin + (self.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/") }

    public var debugDescription: String { self.description }
    /// `dump` and debuggers show the URL without its query, and no secret.
    public var customMirror: Mirror { Mirror(self, children: ["url": self.description, "secretFile": self.secretFile]) }

    public static func == (lhs: WebhookTarget, rhs: WebhookTarget) -> Bool {
        lhs.origin == rhs.origin && lhs.target == rhs.target && lhs.secretFile == rhs.secretFile
    }

    /// Reads a webhook's settings.
    /// - Parameters:
    ///   - url: An `http` or `https` URL, without user info or fragment, at most 2048 visible ASCII characters.
    ///   - secretFile: A file holding a `whsec_…` secret.
    ///   - owner: Who the webhook is for, in errors (`caller billing`, `webhook-url`).
    /// - Throws: ``ConfigurationError`` in one line that names the setting and the file, never the secret or the query.
    public static func load(url: String, secretFile: String, owner: String, readFile: (String) throws -> String) throws(ConfigurationError) -> WebhookTarget {
        let problem = ConfigurationError("\(owner): the webhook must be an http:// or https:// URL with a host, without user info or a fragment")
        guard url.utf8.count <= 2048, url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), !url.contains("#") else { throw problem }
        let lowered = url.lowercased()
        guard let scheme = ["https://", "http://"].first(where: { lowered.hasPrefix($0) }) else { throw problem }
        let rest = url.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard !authority.isEmpty, !authority.contains("@") else { throw problem }
        let origin = String(scheme.dropLast(3)) + "://" + authority
        guard (try? Origin(parsing: origin)) != nil else { throw problem }
        var target = String(rest.dropFirst(authority.count))
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        let text = try ConfigurationLoader.text(of: secretFile, named: "\(owner)'s webhook secret file", readFile: readFile)
        guard let secret = WebhookSecret(text) else {
            throw ConfigurationError("\(owner): the webhook secret file \(secretFile) must hold a whsec_ secret (whsec_ and the base64 of 16 to 64 bytes)")
        }
        return WebhookTarget(origin: origin, target: target, secretFile: secretFile, secret: secret)
    }

    private init(origin: String, target: String, secretFile: String, secret: WebhookSecret) {
        self.origin = origin
        self.target = target
        self.secretFile = secretFile
        self.secret = secret
    }
}
