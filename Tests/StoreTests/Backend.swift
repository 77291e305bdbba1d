import Logging
import PostgresTestServer
import Store
import Testing

/// The two backends of ``DeliveryStore``, for the tests every backend must pass alike (PRODUCT.md §8: one interface).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { self.rawValue }

    /// A fresh, empty store of this backend (a new SQLite directory; a new database on the run's PostgreSQL cluster),
    /// and a way to open it again (closing the one open), as a restart would.
    func withStore(_ body: (any DeliveryStore, _ reopen: () async throws -> any DeliveryStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            try await SQLiteStoreTests.withDirectory { directory in
                let store = try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger)
                try await body(store) {
                    await store.close()
                    return try await SQLiteStore.open(directory: directory, logger: SQLiteStoreTests.logger)
                }
            }
        case .postgres:
            let server = try await PostgresTestServer.shared()
            let database = try await server.makeDatabase()
            let location = PostgresLocation(user: server.user, host: "127.0.0.1", port: server.port, database: database, tls: .disable)
            let open = { () async throws(StoreError) -> PostgresStore in
                try await PostgresStore.open(location, password: PostgresTestServer.password, poolSize: 8, logger: SQLiteStoreTests.logger)
            }
            let store = try await open()
            try await body(store) {
                await store.close()
                return try await open()
            }
            await store.close()
            _ = try? await server.psql("postgres", "DROP DATABASE \(database) WITH (FORCE)")
        }
    }
}
