import Signing

/// Where the PostgreSQL store is (`store: postgres://user@host:port/db`, PRODUCT.md §8), parsed without I/O. The
/// password never comes from the URL — the URL is configuration, logged and shown — but from `store-password-file`
/// or `PGPASSWORD`.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// libpq's `sslmode`, as far as sensgate goes: `disable`, `prefer` (the default, as libpq's), `require` (encrypted,
    /// the server not checked) and `verify-full` (encrypted, certificate and name checked).
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode

    public init(user: String, host: String, port: Int = 5432, database: String, tls: TLSMode = .prefer) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls
    }

    /// Parses `postgres://user@host[:port]/database[?sslmode=…]` (also `postgresql://`, and `[…]` around an IPv6 host).
    /// - Throws: ``StoreError`` naming what is wrong (never echoing a password).
    public init(parsing text: String) throws(StoreError) {
        var rest = Substring(text)
        guard let scheme = ["postgres://", "postgresql://"].first(where: { rest.hasPrefix($0) }) else {
            throw .unavailable("store must be embedded or postgres://user@host:port/db")
        }
        rest = rest.dropFirst(scheme.count)
        guard !rest.contains("#") else { throw .unavailable("the store URL must not have a fragment (#…)") }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw .unavailable("the store URL names no database (postgres://user@host:port/db)") }
        let database = rest[rest.index(after: slash)...]
        var authority = rest[..<slash]
        guard let at = authority.lastIndex(of: "@") else { throw .unavailable("the store URL names no user (postgres://user@host:port/db)") }
        let user = authority[..<at]
        guard !user.contains(":") else {
            throw .unavailable("the store URL must not hold a password: use store-password-file or PGPASSWORD")
        }
        authority = authority[authority.index(after: at)...]
        var host = authority
        var port = 5432
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .unavailable("the store URL's IPv6 host has no closing ]") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()), (1...65535).contains(parsed) else { throw .unavailable("the store URL's port is not a port") }
                port = parsed
            } else if !after.isEmpty {
                throw .unavailable("the store URL has something after its IPv6 host that is not a port")
            }
        } else if authority.contains("[") || authority.contains("]") {
            throw .unavailable("the store URL's host must be a name, an IPv4 address or [an IPv6 address]")
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw .unavailable("the store URL's port is not a port")
            }
            port = parsed
        }
        guard !user.isEmpty, !host.isEmpty, !database.isEmpty, !database.contains("/") else {
            throw .unavailable("the store URL must be postgres://user@host:port/db")
        }
        var tls: TLSMode? = nil
        for parameter in query.split(separator: "&") {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0] == "sslmode" else { throw .unavailable("the store URL's parameter \(pair[0]) is not supported (only sslmode)") }
            guard tls == nil else { throw .unavailable("the store URL gives sslmode more than once") }
            guard let mode = TLSMode(rawValue: String(pair[1])) else {
                throw .unavailable("sslmode must be disable, prefer, require or verify-full")
            }
            tls = mode
        }
        // As libpq reads them: the user and database percent-decoded (`%20` a space).
        guard let user = Self.percentDecoded(user), let database = Self.percentDecoded(database) else {
            throw .unavailable("the store URL's user or database has a % that is not %XX of UTF-8")
        }
        self.init(user: user, host: String(host), port: port, database: database, tls: tls ?? .prefer)
    }

    /// `text` with each `%XX` replaced by its byte; `nil` for a bad escape, `%00`, or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(PercentEncoding.hexValue), let low = utf8.next().flatMap(PercentEncoding.hexValue), high | low != 0 else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The URL, as it may be logged (it holds no secret).
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(self.user)@\(host):\(self.port)/\(self.database)" + (self.tls == .prefer ? "" : "?sslmode=\(self.tls.rawValue)")
    }
}
