// swift-tools-version:6.0
// Hostmesh: a peer-to-peer live-migration mesh for QEMU hosts.
//
// The layering is deliberate and one-way; each line below depends only on lines above it:
//   LinkEmulator       a userspace WAN link (delay, jitter, rate, queue, loss) relaying TCP and UDP, for tests and
//                      benchmarks only: no module the agent ships depends on it (SwiftNIO only)
//   MeshTime           the monotonic instant every core takes as `now:`, and every Duration conversion (pure, no dependencies)
//   ShellSupport       what every SwiftNIO shell shares: the loop-bound state and stop promise, the shell timeline, datagram reads,
//                      log lines limited per reason, accepts paused when descriptors run out, turns of async work one at a time
//   CSodium            libsodium through pkg-config (system library)
//   COpenSSL           OpenSSL's libcrypto through pkg-config (system library), for AES-256-GCM only: its
//                      stitched AES-NI/PCLMUL code runs twice as fast as libsodium 1.0.18's here
//   MeshCrypto         the only Swift code that calls libsodium or libcrypto: keys, signatures, DH, AEAD, BLAKE2b;
//                      the replay window
//   MeshWire           protobuf schema of every message on the wire (generated Swift, committed)
//   MeshIdentity       host keys, key files (0600), domain keys, host certificates, trust stores,
//                      revocation lists and the registry every handshake checks, issuer certificates,
//                      key rotation records, the state directory's layout, federation grants (their registry
//                      every handshake checks for hosts of other domains, and the admission check of a VM crossing)
//   SecureChannel      Noise XX handshake + AEAD record layer + in-place re-authentication (pure cores) and their SwiftNIO shell
//   Membership         SWIM + Lifeguard protocol core (pure: events in, directives out)
//   MeshSimulator      deterministic virtual-time network simulator that runs Membership cores
//   HA                 high availability's pure cores: restart in place (backoff, limit), leases on shared storage
//   GossipTransport    the Membership core's shell: encrypted gossip datagrams and push-pull over UDP/TCP
//   Hypervisor         QEMU process supervision, the QMP client, VM specs and their builder, host facts
//   VirtualSwitch      the VMs' switch and its encrypted UDP overlay between hosts (core + shell)
//   Placement          DRS: host loads, rules, balancing plans, initial placement, replicated records (pure)
//   HostHealth         a host's health from its measurements, with hysteresis, and the evacuation policy (pure)
//   Schedules          scheduled operations: records, occurrences, who runs each exactly once (pure)
//   Migration          the migration state machines (pure), their one executor each, and the stream tunnels
//   ControlAPI         JSON lines over a unix socket between the command line and its local agent, and
//                      every type they exchange (so the command line never imports Agent for data)
//   MigrationService   the migration shell: coordinator, source and destination runs, recovery (journal,
//                      VMs and switch behind protocols the agent implements)
//   Telemetry          Prometheus metrics: the registry, the names, the scrape endpoint (plain NIO HTTP/1)
//   Dashboard          the operator's web dashboard (Hummingbird): token, pages, server-sent events; it acts
//                      only through the control socket, so every action takes the command line's checks
//   Agent              the node: configuration, services, durable state
//   Benchmarks         `hostmesh bench …`: ours and the reference measured side by side
//   hostmesh           the one binary: parses arguments, prints results
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "hostmesh",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hostmesh", targets: ["hostmesh"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .target(name: "MeshTime", swiftSettings: strict),
        .target(
            name: "LinkEmulator",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ShellSupport",
            dependencies: [
                "MeshTime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "MeshCrypto",
            dependencies: [
                "CSodium", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "MeshWire",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Protos"],
            swiftSettings: strict
        ),
        .target(
            name: "MeshIdentity",
            dependencies: [
                "MeshCrypto", "MeshWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SecureChannel",
            dependencies: [
                "MeshTime", "ShellSupport", "MeshCrypto", "MeshWire", "MeshIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Membership",
            dependencies: [
                "MeshTime", "MeshWire",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "MeshSimulator", dependencies: ["MeshTime", "Membership"], swiftSettings: strict),
        .target(name: "HA", dependencies: ["MeshTime"], swiftSettings: strict),
        .target(
            name: "GossipTransport",
            dependencies: [
                "MeshTime", "ShellSupport", "Membership", "MeshCrypto", "MeshWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Hypervisor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "VirtualSwitch",
            dependencies: [
                "MeshTime", "ShellSupport", "MeshCrypto", "MeshWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "Placement", swiftSettings: strict),
        .target(name: "HostHealth", swiftSettings: strict),
        .target(name: "Schedules", swiftSettings: strict),
        .target(
            name: "Migration",
            dependencies: [
                "MeshWire", "SecureChannel", "Hypervisor",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ControlAPI",
            dependencies: [
                "Hypervisor", "ShellSupport", "Placement",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "MigrationService",
            dependencies: [
                "Migration", "Hypervisor", "SecureChannel", "MeshIdentity", "MeshWire", "ControlAPI", "MeshTime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Telemetry",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Dashboard",
            dependencies: [
                "ControlAPI", "Hypervisor", "MeshCrypto", "MeshIdentity",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Agent",
            dependencies: [
                "MeshCrypto", "MeshWire", "MeshIdentity", "SecureChannel", "Membership", "GossipTransport", "Hypervisor", "VirtualSwitch", "Migration", "ControlAPI", "MigrationService", "MeshTime", "HA", "Placement", "Telemetry", "Dashboard", "HostHealth", "Schedules", "ShellSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Benchmarks",
            dependencies: [
                "MeshTime", "MeshCrypto", "MeshIdentity", "SecureChannel", "Membership", "Hypervisor", "VirtualSwitch", "ControlAPI", "Agent", "MeshSimulator", "MeshWire", "Placement",
                "LinkEmulator", "MigrationService",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "hostmesh",
            dependencies: [
                "MeshCrypto", "MeshIdentity", "SecureChannel", "GossipTransport", "Hypervisor", "VirtualSwitch", "ControlAPI", "Agent", "MeshSimulator", "Benchmarks",
                "Migration", "MigrationService", "Placement", "Telemetry", "Dashboard",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "MeshTimeTests", dependencies: ["MeshTime"], swiftSettings: strict),
        .testTarget(
            name: "LinkEmulatorTests",
            dependencies: [
                "LinkEmulator",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShellSupportTests",
            dependencies: [
                "ShellSupport", "MeshTime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "MeshCryptoTests", dependencies: ["MeshCrypto"], swiftSettings: strict),
        .testTarget(name: "HATests", dependencies: ["HA", "MeshTime"], swiftSettings: strict),
        .testTarget(name: "MembershipTests", dependencies: ["MeshTime", "Membership", "MeshSimulator", "MeshWire"], swiftSettings: strict),
        .testTarget(
            name: "GossipTransportTests",
            dependencies: [
                "MeshTime", "GossipTransport", "Membership", "MeshWire", "MeshCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "PlacementTests", dependencies: ["Placement"], swiftSettings: strict),
        .testTarget(name: "HostHealthTests", dependencies: ["HostHealth", "Placement"], swiftSettings: strict),
        .testTarget(name: "SchedulesTests", dependencies: ["Schedules"], swiftSettings: strict),
        .testTarget(name: "HypervisorTests", dependencies: ["Hypervisor"], swiftSettings: strict),
        .testTarget(
            name: "MigrationTests",
            dependencies: [
                "Migration", "SecureChannel", "MeshIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VirtualSwitchTests",
            dependencies: [
                "MeshTime", "ShellSupport", "VirtualSwitch", "Hypervisor", "Benchmarks",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "MeshIdentity", "MeshTime", "Membership", "MeshWire", "ControlAPI", "Hypervisor", "MigrationService", "SecureChannel", "HA", "Dashboard",
                "LinkEmulator", "GossipTransport", "MeshCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MigrationServiceTests",
            dependencies: ["MigrationService", "Migration", "Hypervisor", "ControlAPI", "SecureChannel", "MeshIdentity", "MeshWire"],
            swiftSettings: strict
        ),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks", "Membership"], swiftSettings: strict),
        .testTarget(
            name: "TelemetryTests",
            dependencies: [
                "Telemetry",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "DashboardTests", dependencies: ["Dashboard", "ControlAPI", "MeshIdentity", .product(name: "Logging", package: "swift-log"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio")], swiftSettings: strict),
        .testTarget(name: "ControlAPITests", dependencies: ["ControlAPI", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "RepositoryRulesTests", swiftSettings: strict),
        .testTarget(
            name: "FuzzTests",
            dependencies: [
                "ControlAPI", "Hypervisor", "Membership", "MeshIdentity", "MeshWire", "VirtualSwitch",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MeshIdentityTests",
            dependencies: ["MeshIdentity", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: strict
        ),
        // Protocol.md checked against the code and against libsodium called directly: the
        // schemas of its appendix against Sources/MeshWire/Protos, and its test vectors.
        .testTarget(
            name: "ProtocolDocumentTests",
            dependencies: [
                "CSodium", "MeshCrypto", "MeshWire", "MeshIdentity", "SecureChannel", "VirtualSwitch", "GossipTransport", "Migration",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SecureChannelTests",
            dependencies: [
                "MeshTime", "SecureChannel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
