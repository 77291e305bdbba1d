import FoundationEssentials
import GatewayServer
import Logging
import Store

/// Opens the store the settings name: the one place `serve` and the operator tools (`events`, `track`) do.
enum StoreSetup {
    /// - Parameter owner: `serve`: the process that works the store. An embedded store's claims left by a killed
    ///   `serve` are then released at once (the file has one owner); a shared PostgreSQL store's never are — other
    ///   replicas may hold them — they lapse.
    static func open(
        _ location: StoreLocation, dataDir: String, passwordFile: String?, poolSize: Int, logger: Logger, owner: Bool
    ) async throws(StoreError) -> any DeliveryStore {
        switch location {
        case .embedded:
            return try await SQLiteStore.open(directory: dataDir, logger: logger, releasingClaims: owner)
        case .postgres(let database):
            let password = try Self.password(file: passwordFile, environment: ProcessInfo.processInfo.environment)
            return try await PostgresStore.open(database, password: password, poolSize: poolSize, logger: logger)
        }
    }

    /// The PostgreSQL password: the file's first line, else `PGPASSWORD`, else none (trust or certificate auth).
    static func password(file: String?, environment: [String: String]) throws(StoreError) -> String? {
        guard let file else { return environment["PGPASSWORD"] }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw .unavailable("cannot read store-password-file \(file)")
        }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
    }
}
