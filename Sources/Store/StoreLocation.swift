/// Which backend keeps the store (`store`, PRODUCT.md §8): the embedded SQLite file in `data-dir`, or a PostgreSQL
/// database shared by a fleet.
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    case embedded
    case postgres(PostgresLocation)

    /// `embedded`, or a `postgres://` URL.
    public init(parsing text: String) throws(StoreError) {
        self = text == "embedded" ? .embedded : .postgres(try PostgresLocation(parsing: text))
    }

    public var description: String {
        switch self {
        case .embedded: "embedded"
        case .postgres(let location): location.description
        }
    }
}
