import Agent
import ControlAPI
import Foundation
import MigrationService
import MeshIdentity
import Membership
import Testing

@Suite struct AgentConfigurationTests {
    func write(_ text: String) -> String {
        let path = NSTemporaryDirectory() + "hostmesh-config-\(UUID().uuidString).toml"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    @Test func tomlOverridesDefaults() throws {
        let path = write("""
        state_dir = "/tmp/x"
        channel_listen = "127.0.0.1:9000"
        peers = ["10.0.0.2:7946", "[::1]:7000"]
        """)
        let c = try AgentConfiguration(tomlFile: path)
        #expect(c.stateDirectory == "/tmp/x")
        #expect(c.channelListen == HostPort(host: "127.0.0.1", port: 9000))
        #expect(c.peers == [HostPort(host: "10.0.0.2", port: 7946), HostPort(host: "::1", port: 7000)])
        #expect(c.logLevel == "info")
    }

    @Test func mistakesAreNamed() {
        func message(_ toml: String) -> String {
            do { _ = try AgentConfiguration(tomlFile: write(toml)); return "" } catch { return "\(error)" }
        }
        #expect(message("stat_dir = \"/x\"").contains("unknown key \"stat_dir\""))
        #expect(message("channel_listen = \"nohost\"").contains("host:port"))
        #expect(message("log_level = \"loud\"").contains("log_level"))
        #expect(message("this is not toml").contains("not valid TOML"))
        #expect((try? AgentConfiguration(tomlFile: "/nonexistent.toml")) == nil)
        #expect(message("max_incoming_migrations = 0").contains("max_incoming_migrations = 0: it must be between 1 and 64"))
    }

    /// The mesh default restart policy and its limits (Protocol.md §9.1).
    @Test func restartSettingsAreReadAndChecked() throws {
        let c = try AgentConfiguration(tomlFile: write("restart = \"on-failure\"\nrestart_limit = 5\nrestart_window_seconds = 120"))
        #expect(c.restart == .onFailure && c.restartLimit == 5 && c.restartWindowSeconds == 120)
        #expect(AgentConfiguration().restart == .no)
        func message(_ toml: String) -> String {
            do { _ = try AgentConfiguration(tomlFile: write(toml)); return "" } catch { return "\(error)" }
        }
        #expect(message("restart = \"always\"").contains("restart policy \"always\" is not one of no, on-failure"))
        #expect(message("restart_limit = 0").contains("restart_limit = 0: it must be between 1 and 100"))
        #expect(message("restart_window_seconds = 1").contains("restart_window_seconds = 1: it must be between 10 and 86400"))
    }

    /// The membership profile (Protocol.md §4.11.1): LAN by default, WAN timings from wan_rtt_ms.
    @Test func membershipProfileIsReadAndChecked() throws {
        #expect(AgentConfiguration().membershipSettings == MembershipSettings())
        let wan = try AgentConfiguration(tomlFile: write("membership_profile = \"wan\"\nwan_rtt_ms = 150"))
        #expect(wan.membershipProfile == .wan && wan.membershipSettings == .wan(roundTrip: .milliseconds(150)))
        #expect(wan.membershipSettings.probeInterval == .milliseconds(1_300))
        #expect(try AgentConfiguration(tomlFile: write("membership_profile = \"wan\"")).membershipSettings.probeInterval == .milliseconds(1_700))
        func message(_ toml: String) -> String {
            do { _ = try AgentConfiguration(tomlFile: write(toml)); return "" } catch { return "\(error)" }
        }
        #expect(message("membership_profile = \"far\"").contains("it must be \"lan\" or \"wan\""))
        #expect(message("wan_rtt_ms = 0").contains("wan_rtt_ms = 0: it must be between 1 and 2000"))
    }

    /// The congestion control of migration streams at distance (Protocol.md §6.11): BBR unless
    /// the operator says "system" or names another; anything else is refused with the choices.
    @Test func streamCongestionControlIsReadAndChecked() throws {
        #expect(AgentConfiguration().streamCongestionChoice == .algorithm("bbr"))
        #expect(try AgentConfiguration(tomlFile: write("stream_congestion_control = \"system\"")).streamCongestionChoice == .system)
        #expect(try AgentConfiguration(tomlFile: write("stream_congestion_control = \"cubic\"")).streamCongestionChoice == .algorithm("cubic"))
        do {
            _ = try AgentConfiguration(tomlFile: write("stream_congestion_control = \"BBR v2\""))
            Issue.record("a name with a space and capitals was taken")
        } catch {
            #expect("\(error)".contains("stream_congestion_control = \"BBR v2\": give \"bbr\" (the default), \"system\""), "\(error)")
        }
    }

    @Test func migrationLimitsFollowTheLinkUnlessSet() throws {
        let c = try AgentConfiguration(tomlFile: write("max_incoming_migrations = 2"))
        #expect(c.maxIncomingMigrations == 2 && c.maxOutgoingMigrations == nil)
        let slow = MigrationLimits(linkMegabits: 1_000, incoming: c.maxIncomingMigrations)
        #expect(slow.incoming == 2 && slow.outgoing == 4)
        #expect(MigrationLimits(linkMegabits: 25_000).outgoing == 8)
        #expect(MigrationLimits(linkMegabits: nil).incoming == 4)
        // Loopback reports no speed: the slow-link default.
        #expect(LinkSpeed.interface(holding: "127.0.0.1") == "lo")
        #expect(LinkSpeed.megabitsPerSecond(of: "127.0.0.1") == nil)
        #expect(LinkSpeed.interface(holding: "192.0.2.254") == nil)
    }

    /// Migrations with local disks have a limit of their own among the incoming ones (issue 11).
    @Test func diskMigrationLimitIsReadCheckedAndCappedByTheIncomingLimit() throws {
        #expect(MigrationLimits(linkMegabits: nil).incomingWithDisks == 4)
        #expect(MigrationLimits(linkMegabits: nil, incoming: 2).incomingWithDisks == 2, "above the incoming limit it could never be reached")
        let c = try AgentConfiguration(tomlFile: write("max_incoming_migrations = 8\nmax_incoming_disk_migrations = 6"))
        #expect(c.maxIncomingDiskMigrations == 6)
        #expect(MigrationLimits(linkMegabits: nil, incoming: c.maxIncomingMigrations, incomingWithDisks: c.maxIncomingDiskMigrations).incomingWithDisks == 6)
        func message(_ toml: String) -> String {
            do { _ = try AgentConfiguration(tomlFile: write(toml)); return "" } catch { return "\(error)" }
        }
        #expect(message("max_incoming_disk_migrations = 0").contains("max_incoming_disk_migrations = 0: it must be between 1 and 64"))
        #expect(message("max_incoming_disk_migrations = 65").contains("it must be between 1 and 64"))
        #expect(message("max_incoming_migrations = 2\nmax_incoming_disk_migrations = 3")
            .contains("max_incoming_disk_migrations = 3 is above max_incoming_migrations = 2"))
    }

    /// And among the outgoing ones, the same way (issue 11).
    @Test func outgoingDiskMigrationLimitIsReadCheckedAndCappedByTheOutgoingLimit() throws {
        #expect(MigrationLimits(linkMegabits: nil).outgoingWithDisks == 4)
        #expect(MigrationLimits(linkMegabits: nil, outgoing: 2).outgoingWithDisks == 2, "above the outgoing limit it could never be reached")
        let c = try AgentConfiguration(tomlFile: write("max_outgoing_migrations = 8\nmax_outgoing_disk_migrations = 3"))
        #expect(c.maxOutgoingDiskMigrations == 3)
        #expect(MigrationLimits(linkMegabits: nil, outgoing: c.maxOutgoingMigrations, outgoingWithDisks: c.maxOutgoingDiskMigrations).outgoingWithDisks == 3)
        func message(_ toml: String) -> String {
            do { _ = try AgentConfiguration(tomlFile: write(toml)); return "" } catch { return "\(error)" }
        }
        #expect(message("max_outgoing_disk_migrations = 0").contains("max_outgoing_disk_migrations = 0: it must be between 1 and 64"))
        #expect(message("max_outgoing_migrations = 2\nmax_outgoing_disk_migrations = 3")
            .contains("max_outgoing_disk_migrations = 3 is above max_outgoing_migrations = 2"))
    }

    @Test func credentialsMismatchesAreExplained() throws {
        let dir = NSTemporaryDirectory() + "hostmesh-state-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try HostIdentity(hostID: "node-a")
        try host.save(inDirectory: dir)
        func message() -> String {
            do { _ = try AgentCredentials.load(stateDirectory: dir); return "" } catch { return "\(error)" }
        }
        #expect(message().contains("hostmesh domain certify"))
        let domain = try DomainAuthority(name: "lab")
        let now = Int64(Date().timeIntervalSince1970)
        // A certificate for another key is refused.
        let other = try HostIdentity(hostID: "node-a")
        try domain.certify(other.publicKeys, serial: 1, notBefore: now - 10, notAfter: now + 100).save(dir + "/host.cert")
        #expect(message().contains("re-certify"))
        // The right certificate, but the domain is not trusted yet.
        try domain.certify(host.publicKeys, serial: 2, notBefore: now - 10, notAfter: now + 100).save(dir + "/host.cert")
        #expect(message().contains("hostmesh keys trust"))
        try domain.trustAnchor.save(dir + "/trust/lab.pub")
        #expect(message() == "")
    }
}
