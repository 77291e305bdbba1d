// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "sensgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sensgate", targets: ["SensgateCLI"]),
        // scripts/bench.sh only: a bare swift-nio HTTP/1 server, the floor the gateway's own work is measured against.
        .executable(name: "nio-floor", targets: ["NIOFloor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // The embedded store: SQLite through a thread pool, no Foundation beyond FoundationEssentials.
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        // The fleet's store: PostgreSQL's wire protocol and a connection pool, no ORM.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Tests only: TLS and HTTP/2 in front of the SENS mock, as SENS is reached in production.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // scripts/bench.sh only (see its opening comment).
        .executableTarget(
            name: "NIOFloor",
            dependencies: [
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // C interop: the only places that include curl.h and OpenSSL headers.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // Pure logic.
        .target(
            name: "Signing",
            dependencies: ["CCrypto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "JSON",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "DeliveryResults",
            dependencies: ["JSON"],
            resources: [.embedInCode("codes.csv")],
            swiftSettings: swiftSettings
        ),
        // I/O.
        .target(
            name: "UpstreamClient",
            dependencies: [
                "CCurl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SENSClient",
            dependencies: ["Signing", "UpstreamClient"],
            swiftSettings: swiftSettings
        ),
        // State that outlives a process: tracked sends, their results, the webhook outbox.
        .target(
            name: "Store",
            dependencies: [
                "Signing",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatewayServer",
            dependencies: [
                "Signing",
                "Store",
                "UpstreamClient",
                "SENSClient",
                "DeliveryResults",
                "JSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SENSMock",
            dependencies: [
                "Signing",
                "JSON",
                "DeliveryResults",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SensgateCLI",
            dependencies: [
                "GatewayServer",
                "Store",
                "SENSMock",
                "Signing",
                "DeliveryResults",
                "JSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "UpstreamClient",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings,
            // `--static-swift-stdlib` links with `-export-dynamic`, which exports every Swift symbol of every
            // package: a 0.5 MB dynamic symbol table the loader walks at start-up, and ~2 MB more idle RSS.
            // Nothing looks our symbols up dynamically, so they stay local (docs/performance.md).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(platforms: [.linux]))]
        ),
        .testTarget(
            name: "SigningTests",
            dependencies: ["Signing"],
            swiftSettings: swiftSettings
        ),
        // Tests only: a throwaway PostgreSQL cluster (initdb into a temp dir, a free loopback port).
        .target(
            name: "PostgresTestServer",
            path: "Tests/Support/PostgresTestServer",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StoreTests",
            dependencies: [
                "Store", "PostgresTestServer", .product(name: "SQLiteNIO", package: "sqlite-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DeliveryResultsTests",
            dependencies: ["DeliveryResults", "JSON", "SENSMock"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "GatewayServer",
                "Store",
                "SENSClient",
                "SENSMock",
                "UpstreamClient",
                "Signing",
                "DeliveryResults",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "SensgateCLI",
                "PostgresTestServer",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
