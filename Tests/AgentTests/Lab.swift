import ControlAPI
import Foundation
import LinkEmulator
import Synchronization

/// A lab of hosts on this machine, made by `Scripts/lab.sh`: each host a network namespace with
/// its own address on a bridge (MTU 1500), and a directory standing for shared storage. Agents
/// started in it (`TestMesh(lab:)`, `start(_:on:)`) see real, distinct addresses instead of
/// 127.0.0.1. Needs root; its names carry this test process's pid and a counter, so concurrent
/// runs and tests do not collide, and a lab left by a crashed run is removed by the next one.
final class Lab: Sendable {
    /// Namespaces `<prefix>-<i>`, bridge `<prefix>-br`, veths `<prefix>-v<i>`.
    let prefix: String
    /// The first three octets of the lab's /24: host i is `<net>.<i>`, the bridge `<net>.254`.
    let net: String
    /// The lab's directory; `shared` below it stands for shared storage.
    let directory: String
    let hosts: Int
    private let isDown = Mutex(false)

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"
    /// Network namespaces need root (and iproute2).
    static var available: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: ip) }
    static var script: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Scripts/lab.sh").path
    }
    private static let made = Mutex(0)
    /// "hml" + pid in base 36 + "_" + counter in base 36: at most 11 characters, which leaves
    /// room for "-v<i>" in a 15-byte interface name.
    private static var pattern: Regex<(Substring, Substring, Substring)> { /^hml([0-9a-z]+)_([0-9a-z]+)$/ }

    /// Builds `hosts` hosts (1 to 99). With `siteBFrom` (2...hosts), hosts siteBFrom...hosts form
    /// a second site on a bridge of their own that reaches the first only through `joinSites`.
    init(hosts: Int, siteBFrom: Int = 0) throws {
        precondition((1...99).contains(hosts), "a lab has 1 to 99 hosts") // a mistake in the test
        Lab.removeAbandoned()
        let serial = Lab.made.withLock { count in
            count += 1
            return count
        }
        prefix = "hml" + String(getpid(), radix: 36) + "_" + String(serial, radix: 36)
        directory = NSTemporaryDirectory() + prefix
        self.hosts = hosts
        // One lab at a time picks its /24 and takes it, across test processes too (make test
        // runs two side by side): otherwise two could find the same one free.
        let lock = open(NSTemporaryDirectory() + "hostmesh-lab.lock", O_CREAT | O_RDWR, 0o600)
        defer { if lock >= 0 { close(lock) } } // closing releases the lock
        if lock >= 0 { flock(lock, LOCK_EX) }
        net = try Lab.unusedNet(seed: Int(getpid()) &* 31 &+ serial)
        let (status, output) = try Lab.run("up", "\(hosts)", prefix: prefix, net: net, directory: directory,
                                           siteBFrom: siteBFrom)
        guard status == 0 else { throw ControlError.failed("lab.sh up \(hosts) failed (\(status)): \(output)") }
    }

    func namespace(_ host: Int) -> String { "\(prefix)-\(host)" }
    func address(_ host: Int) -> String { "\(net).\(host)" }
    var shared: String { directory + "/shared" }

    /// Removes the namespaces (and whatever still runs in them), the bridge and the directory.
    func tearDown() {
        let first = isDown.withLock { down in
            defer { down = true }
            return !down
        }
        guard first else { return }
        _ = try? Lab.run("down", prefix: prefix, net: net, directory: directory)
    }

    deinit { tearDown() }

    private static func run(_ arguments: String..., prefix: String, net: String, directory: String, siteBFrom: Int = 0) throws -> (status: Int32, output: String) {
        try runTool("/bin/sh", [script] + arguments, environment: ["HM_LAB_PREFIX": prefix, "HM_LAB_NET": net, "HM_LAB_DIR": directory,
                                                                  "HM_LAB_SITE_B_FROM": "\(siteBFrom)"])
    }

    /// Joins the two sites of a lab made with `siteBFrom` through a frame-level link emulator
    /// with `profile` (site A to site B; the reverse direction alike): a tap on each site's
    /// bridge. Stop the link before the lab goes down.
    func joinSites(_ profile: LinkProfile) throws -> FrameLink {
        let link = try FrameLink(tapA: prefix + "-ta", tapB: prefix + "-tb", profile: profile)
        for (tap, bridge) in [(link.tapA, prefix + "-br"), (link.tapB, prefix + "-bb")] {
            let (status, output) = try runTool(Lab.ip, ["link", "set", tap, "mtu", "1500", "master", bridge, "up"])
            guard status == 0 else {
                link.stop()
                throw ControlError.failed("cannot put \(tap) on \(bridge): \(output)")
            }
        }
        return link
    }

    /// A /24 in 10.77.101-199 that no interface of the root namespace is in (another lab's bridge).
    private static func unusedNet(seed: Int) throws -> String {
        let (_, output) = try runTool(ip, ["-o", "-4", "addr", "show"])
        for offset in 0..<99 {
            let candidate = "10.77.\(101 + (seed &+ offset).magnitude % 99)"
            if !output.contains(" \(candidate).") { return candidate }
        }
        throw ControlError.failed("no free 10.77.x.0/24 for a lab: \(output)")
    }

    /// Removes the labs of test processes that no longer run (a crashed or killed run).
    private static func removeAbandoned() {
        guard let (_, namespaces) = try? runTool(ip, ["netns", "list"]),
              let (_, bridges) = try? runTool(ip, ["-o", "link", "show", "type", "bridge"]) else { return }
        var prefixes = Set<String>()
        for name in namespaces.split(whereSeparator: \.isNewline).compactMap({ $0.split(separator: " ").first }) {
            if let dash = name.lastIndex(of: "-") { prefixes.insert(String(name[..<dash])) }
        }
        for line in bridges.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            if fields.count > 1, fields[1].hasSuffix("-br:") { prefixes.insert(String(fields[1].dropLast(4))) }
        }
        for prefix in prefixes {
            guard let match = prefix.wholeMatch(of: pattern), let pid = pid_t(match.1, radix: 36) else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH {
                _ = try? run("down", prefix: prefix, net: "10.77.0", directory: NSTemporaryDirectory() + prefix)
            }
        }
    }
}

// MARK: - Faults

extension Lab {
    /// Pulls host `host`'s cable: the bridge end of its veth goes down, so every packet to or from
    /// it (gossip, channels, overlay) is dropped both ways while everything on the machine itself,
    /// the shared storage directory included, stays reachable from it.
    func unplug(_ host: Int) throws {
        let (status, output) = try runTool(Lab.ip, ["link", "set", "dev", "\(prefix)-v\(host)", "down"])
        guard status == 0 else { throw ControlError.failed("cannot unplug lab host \(host): \(output)") }
    }

    /// Plugs host `host` back in (the bridge end of its veth up again).
    func plug(_ host: Int) throws {
        let (status, output) = try runTool(Lab.ip, ["link", "set", "dev", "\(prefix)-v\(host)", "up"])
        guard status == 0 else { throw ControlError.failed("cannot plug lab host \(host) back in: \(output)") }
    }

    /// Cuts `directory` off for the processes of one lab host: a read-only bind mount of it over
    /// itself in the mount namespace of `process` (an agent started with `ip netns exec`, which
    /// gives it a mount namespace of its own; its keepers and QEMUs share it). Writes and renames
    /// there fail with EROFS for that host only, as on storage it can no longer write; files
    /// already open for writing elsewhere (its QEMU's disk image) stay writable. Refuses when the
    /// process shares this test process's mount namespace (the cut would reach every host).
    func cutStorage(_ directory: String, forProcess process: pid_t) throws {
        let mine = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process)/ns/mnt")
        guard mine != theirs else { throw ControlError.failed("process \(process) shares the test's mount namespace (\(mine)): no storage cut of its own") }
        // One shell in the namespace, and the read-only remount retried: a file the host opens
        // for writing between the bind and the remount (its lease keeper's) makes the remount
        // fail with "mount point is busy" until it is closed, a few milliseconds later.
        let script = """
            mount --bind "$1" "$1" || exit 1
            for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
                mount -o remount,bind,ro "$1" && exit 0
                sleep 0.1
            done
            exit 1
            """
        let (status, output) = try runTool("/usr/bin/nsenter", ["-t", "\(process)", "-m", "--", "/bin/sh", "-c", script, "cut", directory])
        guard status == 0 else { throw ControlError.failed("cannot cut \(directory) off for process \(process): \(output)") }
    }
}
