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
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()), (1...65535).contains(parsed) else { throw .unavailable("the store URL's port is not a port") }
                port = parsed
            }
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
        var tls = TLSMode.prefer
        for parameter in query.split(separator: "&") {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0] == "sslmode" else { throw .unavailable("the store URL's parameter \(pair[0]) is not supported (only sslmode)") }
            guard let mode = TLSMode(rawValue: String(pair[1])) else {
                throw .unavailable("sslmode must be disable, prefer, require or verify-full")
            }
            tls = mode
        }
        self.init(user: String(user), host: String(host), port: port, database: String(database), tls: tls)
    }

    /// The URL, as it may be logged (it holds no secret).
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(self.user)@\(host):\(self.port)/\(self.database)" + (self.tls == .prefer ? "" : "?sslmode=\(self.tls.rawValue)")
    }
}
