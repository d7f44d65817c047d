import Foundation
import LinkEmulator
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Two lab sites for a benchmark across distance: host 1 (site A) and host 2 (site B), each a
/// network namespace made by `Scripts/lab.sh` on a bridge of its own, the two bridges joined only
/// by a frame-level link emulator (`FrameLink`, a tap on each). A TCP connection between the
/// sites runs end to end through the link's delay and rate, with its real windows and slow start
/// (unlike `EmulatedLink`'s relays, which end every connection and so hide them).
///
/// Needs root (namespaces, tap devices). Names: `hmx<pid in base 36>_<n>`, so they cannot collide
/// with the test suite's labs (`hml…`), the bulk benchmark's (`hmbench`) or a concurrent run; the
/// /24 is one of 10.77.200-249 that no interface of the root namespace is in.
final class LabSites: Sendable {
    /// Namespaces `<prefix>-1`, `<prefix>-2`.
    let prefix: String
    /// First three octets of the /24.
    let net: String
    let script: String
    let link: FrameLink
    private let environment: [String: String]

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"
    private static let made = Mutex(0)

    /// Builds the two sites with `script` (`Scripts/lab.sh`) and joins them with `profile`.
    ///
    /// - Throws: `BulkTransferBenchmark.BenchmarkError.lab` naming what failed.
    init(script: String, profile: LinkProfile) throws {
        guard getuid() == 0 else {
            throw BulkTransferBenchmark.BenchmarkError.lab("two lab sites need root (network namespaces and tap devices): run as root")
        }
        let serial = Self.made.withLock { count in
            count += 1
            return count
        }
        prefix = "hmx" + String(getpid(), radix: 36) + "_" + String(serial % 36, radix: 36)
        self.script = script
        let (_, addresses) = try BulkTransferBenchmark.runTool(Self.ip, ["-o", "-4", "addr", "show"])
        guard let free = (0..<50).lazy.map({ "10.77.\(200 + (Int(getpid()) &+ serial &+ $0).magnitude % 50)" })
            .first(where: { !addresses.contains(" \($0).") }) else {
            throw BulkTransferBenchmark.BenchmarkError.lab("no free /24 in 10.77.200-249 for the sites (other labs hold them all): \(addresses)")
        }
        net = free
        environment = ["HM_LAB_PREFIX": prefix, "HM_LAB_NET": net, "HM_LAB_DIR": NSTemporaryDirectory() + prefix, "HM_LAB_SITE_B_FROM": "2"]
        let (status, output) = try BulkTransferBenchmark.runTool("/bin/sh", [script, "up", "2"], environment: environment)
        guard status == 0 else {
            throw BulkTransferBenchmark.BenchmarkError.lab("\(script) up 2 failed (\(status)): \(output); clean up with `HM_LAB_PREFIX=\(prefix) \(script) down` and check that iproute2 works as root")
        }
        do {
            link = try FrameLink(tapA: prefix + "-ta", tapB: prefix + "-tb", profile: profile)
        } catch {
            _ = try? BulkTransferBenchmark.runTool("/bin/sh", [script, "down"], environment: environment) // the error below says what failed
            throw BulkTransferBenchmark.BenchmarkError.lab("cannot make the frame link's taps: \(error) (needs root and /dev/net/tun)")
        }
        for (tap, bridge) in [(link.tapA, prefix + "-br"), (link.tapB, prefix + "-bb")] {
            let status: Int32, output: String
            do { (status, output) = try BulkTransferBenchmark.runTool(Self.ip, ["link", "set", tap, "mtu", "1500", "master", bridge, "up"]) } catch {
                tearDown() // the namespaces, taps and link threads go with the error
                throw error
            }
            guard status == 0 else {
                tearDown()
                throw BulkTransferBenchmark.BenchmarkError.lab("cannot put \(tap) on \(bridge): \(output) (is \(bridge) there? `ip link show \(bridge)`)")
            }
        }
    }

    /// Host 1 (site A) or 2 (site B).
    func namespace(_ host: Int) -> String { "\(prefix)-\(host)" }
    func address(_ host: Int) -> String { "\(net).\(host)" }

    /// Starts `executable` inside host `host` (`ip netns exec`, which execs it: the pid returned is
    /// the program's own, a child of this process), output appended to `output`.
    func spawn(on host: Int, _ executable: String, _ arguments: [String], output: String) throws -> pid_t {
        try Self.spawnDetached(Self.ip, ["netns", "exec", namespace(host), executable] + arguments, output: output)
    }

    /// Stops the link, then removes the sites and whatever still runs in them.
    func tearDown() {
        link.stop()
        _ = try? BulkTransferBenchmark.runTool("/bin/sh", [script, "down"], environment: environment) // best effort: `up` of the same prefix removes it too
    }

    /// posix_spawn, not Foundation's Process (which would take SIGCHLD from the QEMU supervisors).
    static func spawnDetached(_ path: String, _ arguments: [String], output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw BulkTransferBenchmark.BenchmarkError.lab("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }
}
