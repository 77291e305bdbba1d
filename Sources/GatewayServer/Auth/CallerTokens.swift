import Signing
import Synchronization

/// One internal service allowed to call the gateway.
///
/// The token itself is not kept: only its SHA-256, which presented tokens are compared with (in constant time, and
/// of equal length whatever was presented). Neither prints nor reflects (`dump`, `Mirror`) the digest.
public struct Caller: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    /// The caller's name, as it appears in logs and metrics.
    public let name: String
    let tokenDigest: [UInt8]
    /// Channels the caller may use (`sms`, `brandmessage`, `alimtalk`, `friendtalk`); `nil` for all.
    public let channels: Set<String>?
    /// SENS service IDs the caller may use; `nil` for any.
    public let serviceIds: Set<String>?
    /// SENS path prefixes the caller may reach (e.g. one service ID's); `nil` for any under its channels.
    public let prefixes: [String]?
    /// Whether the caller's sends are tracked to their final results without asking (`track: true`).
    public let track: Bool
    /// Where the caller's delivery events go (`webhook` and `webhook-secret-file`); `nil` for the global setting.
    public let webhook: WebhookTarget?
    /// Whether the caller's sends must carry an `Idempotency-Key` (`require-idempotency-key: true`).
    public let requiresIdempotencyKey: Bool

    init(
        name: String, token: String, channels: Set<String>? = nil, serviceIds: Set<String>? = nil, prefixes: [String]? = nil,
        track: Bool = false, webhook: WebhookTarget? = nil, requiresIdempotencyKey: Bool = false
    ) {
        self.requiresIdempotencyKey = requiresIdempotencyKey
        self.webhook = webhook
        self.name = name
        self.tokenDigest = SHA256.digest(Array(token.utf8))
        self.channels = channels
        self.serviceIds = serviceIds
        self.prefixes = prefixes
        self.track = track
    }

    public var description: String { "Caller(\(self.name))" }
    public var customMirror: Mirror { Mirror(self, children: ["name": self.name]) }
}

/// The callers allowed in, read from a YAML file:
///
/// ```yaml
/// billing: 8c1f…                # name: token — every channel
/// marketing:
///   token: 3e9a…
///   channels: [brandmessage, alimtalk]
///   prefixes: ["/brandmessage/v2/services/ncp:kkobizmsg:kr:1:marketing/"]
/// ```
///
/// Names are 1–64 of `A–Z a–z 0–9 _ . -` (they become metric labels); tokens are 16–256 visible ASCII characters
/// and unique.
public struct CallerTokens: Sendable {
    public let callers: [Caller]

    static let channelNames: Set<String> = ["sms", "brandmessage", "alimtalk", "friendtalk"]

    /// Parses a tokens file.
    /// - Parameter readFile: Reads the webhook secret files the entries name.
    /// - Throws: ``ConfigurationError`` naming the file and the entry that is wrong; never the token.
    public init(yaml text: String, source: String, readFile: (String) throws -> String = ConfigurationLoader.readTextFile) throws(ConfigurationError) {
        let parsed: YAMLSubset.Node
        do {
            parsed = try YAMLSubset.parse(text)
        } catch {
            // The parser's reason names a line, never its text: the line may hold a token.
            throw ConfigurationError("the caller tokens file \(source) is not valid YAML (line \(error.line))")
        }
        guard case .mapping(let entries) = parsed, !entries.isEmpty else {
            throw ConfigurationError("the caller tokens file \(source) must map caller names to tokens")
        }
        var callers: [Caller] = []
        var seen: Set<String> = []
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, name.utf8.count <= 64,
                name.utf8.allSatisfy({ byte in
                    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                        || byte == UInt8(ascii: "-")
                })
            else {
                throw ConfigurationError("caller name \"\(name.prefix(64))\" in \(source) must be 1 to 64 letters, digits, '_', '.' or '-'")
            }
            let token: String
            var channels: Set<String>? = nil
            var serviceIds: Set<String>? = nil
            var prefixes: [String]? = nil
            var track = false
            var requiresKey = false
            var webhook: WebhookTarget? = nil
            switch value {
            case .scalar(let text):
                token = text
            case .mapping(let fields):
                guard case .scalar(let text)? = value["token"] else { throw ConfigurationError("caller \(name) in \(source) has no token") }
                token = text
                if let list = value["channels"] {
                    guard let names = Self.texts(list), !names.isEmpty, names.allSatisfy(Self.channelNames.contains) else {
                        throw ConfigurationError("caller \(name) in \(source): channels must be a list of sms, brandmessage, alimtalk, friendtalk")
                    }
                    channels = Set(names)
                }
                if let list = value["service-ids"] {
                    guard let ids = Self.texts(list), !ids.isEmpty,
                        ids.allSatisfy(DeliveryLookup.isServiceId)
                    else {
                        throw ConfigurationError("caller \(name) in \(source): service-ids must be a list of SENS service IDs")
                    }
                    serviceIds = Set(ids)
                }
                if let list = value["prefixes"] {
                    guard let paths = Self.texts(list), !paths.isEmpty,
                        paths.allSatisfy({ path in RequestTarget.passthroughPrefixes.contains { path.hasPrefix($0) } })
                    else {
                        throw ConfigurationError("caller \(name) in \(source): prefixes must be paths under /sms/v2/, /brandmessage/v2/, /alimtalk/v2/ or /friendtalk/v2/")
                    }
                    prefixes = paths
                }
                track = try Self.flag(value["track"], "track", caller: name, source: source)
                requiresKey = try Self.flag(value["require-idempotency-key"], "require-idempotency-key", caller: name, source: source)
                switch (value["webhook"], value["webhook-secret-file"]) {
                case (nil, nil):
                    break
                case (.scalar(let url)?, .scalar(let file)?):
                    webhook = try WebhookTarget.load(url: url, secretFile: file, owner: "caller \(name) in \(source)", readFile: readFile)
                default:
                    throw ConfigurationError("caller \(name) in \(source): webhook and webhook-secret-file go together, each one text")
                }
                let unknown = Set(fields.map(\.key)).subtracting(Self.entryKeys)
                guard unknown.isEmpty else {
                    throw ConfigurationError("caller \(name) in \(source) has unknown keys: \(unknown.sorted().joined(separator: ", "))")
                }
            default:
                throw ConfigurationError("caller \(name) in \(source) must be a token or a mapping with \(Self.entryKeys.joined(separator: ", "))")
            }
            guard (16...256).contains(token.utf8.count), token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw ConfigurationError("caller \(name) in \(source): the token must be 16 to 256 visible ASCII characters")
            }
            guard seen.insert(token).inserted else { throw ConfigurationError("caller \(name) in \(source) reuses another caller's token") }
            callers.append(
                Caller(
                    name: name, token: token, channels: channels, serviceIds: serviceIds, prefixes: prefixes, track: track, webhook: webhook,
                    requiresIdempotencyKey: requiresKey))
        }
        self.callers = callers
    }

    /// The keys a caller's entry may have.
    static let entryKeys = ["token", "channels", "service-ids", "prefixes", "track", "webhook", "webhook-secret-file", "require-idempotency-key"]

    /// A `true`/`false` entry; absent is `false`.
    private static func flag(_ node: YAMLSubset.Node?, _ key: String, caller: String, source: String) throws(ConfigurationError) -> Bool {
        guard let node else { return false }
        guard case .scalar(let text) = node, text == "true" || text == "false" else {
            throw ConfigurationError("caller \(caller) in \(source): \(key) must be true or false")
        }
        return text == "true"
    }

    /// A list of scalars as text, or `nil` for anything else.
    private static func texts(_ node: YAMLSubset.Node) -> [String]? {
        guard case .list(let items) = node else { return nil }
        var texts: [String] = []
        for item in items {
            guard case .scalar(let text) = item else { return nil }
            texts.append(text)
        }
        return texts
    }

    /// The caller a presented token belongs to.
    ///
    /// The presented token's digest is compared with every caller's, each in constant time over 32 bytes, so the
    /// time taken says nothing about which one matched, how much of one, or how long the real tokens are.
    public func authenticate(_ presented: String) -> Caller? {
        let digest = SHA256.digest(Array(presented.utf8))
        var match: Caller? = nil
        for caller in self.callers where constantTimeEquals(bytes: caller.tokenDigest, digest) {
            match = caller
        }
        return match
    }
}

/// The caller tokens in force, replaced on reload.
final class CallerStore: Sendable {
    private let current: Mutex<CallerTokens?>

    init(_ tokens: CallerTokens?) {
        self.current = Mutex(tokens)
    }

    var tokens: CallerTokens? { self.current.withLock { $0 } }

    func replace(with tokens: CallerTokens?) {
        self.current.withLock { $0 = tokens }
    }
}
