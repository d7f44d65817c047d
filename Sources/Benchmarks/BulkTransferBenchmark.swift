import Foundation
import Hypervisor
import MeshCrypto
import NIOCore
import NIOPosix
import VirtualSwitch
#if canImport(Glibc)
import Glibc
#endif

/// `hostmesh bench network`'s bulk rows: one sustained TCP transfer between two real guests
/// (`hmtool bulk` into `hmtool bulksink`, every byte checked by the sink), through one switch,
/// through the encrypted overlay between two switches on loopback (MTU 65,536: an overlay
/// datagram is never fragmented), and through the overlay across a lab of two hosts on a
/// 1,500-byte bridge (a guest's full-size 1,514-byte frame plus the overlay's 40 bytes and
/// UDP/IP does not fit: the kernel fragments the datagram and the receiving host reassembles it).
///
/// The lab run keeps both switches in this process: each runs on its own event-loop thread,
/// which first enters one lab host's network namespace (`setns`), so the overlay sockets the
/// switches bind there are on that host's address. The guests' unix sockets are paths in the
/// file system and work across namespaces. Needs root; `Scripts/lab.sh` makes the hosts.
public enum BulkTransferBenchmark {
    /// Where the lab comes from.
    public struct LabSettings: Sendable {
        /// `Scripts/lab.sh`.
        public var script: String
        /// Names the lab's namespaces `<prefix>-1`, `<prefix>-2` and its bridge.
        public var prefix = "hmbench"
        /// The first three octets of its /24.
        public var net = "10.77.250"

        /// Settings for `script`.
        public init(script: String) { self.script = script }
    }

    /// One transfer, as the receiving guest saw it.
    public struct Transfer: Sendable, Codable, Hashable {
        /// Bytes received, all checked.
        public var bytes: Int
        /// Bytes that differed from the sender's pattern (0 unless something corrupts data).
        public var badBytes: Int
        /// First byte to last, at the sink, ms.
        public var milliseconds: Int
        /// TCP segments the sink's kernel retransmitted (ACKs, here) during the transfer.
        public var retransmittedSegments: Int
        /// Goodput, megabits per second.
        public var megabitsPerSecond: Double { milliseconds > 0 ? Double(bytes) * 8 / Double(milliseconds) / 1000 : 0 }

        enum CodingKeys: String, CodingKey {
            case bytes, badBytes = "bad_bytes", milliseconds = "ms", retransmittedSegments = "retrans_segs"
        }
    }

    /// The rows.
    public struct Result: Sendable, Codable {
        /// Two guests on one switch.
        public var oneSwitch: Transfer
        /// Two switches on loopback.
        public var overlayLoopback: Transfer
        /// Two switches in two lab hosts (MTU 1500); nil when the lab could not be made.
        public var overlayLab: Transfer?
        /// Why there is no lab figure.
        public var labSkipped: String?
        /// IP fragments the sending lab host made, and datagrams the receiving one reassembled.
        public var labFragmentsCreated: Int?
        /// See `labFragmentsCreated`.
        public var labReassembled: Int?

        enum CodingKeys: String, CodingKey {
            case oneSwitch = "one_switch", overlayLoopback = "overlay_loopback", overlayLab = "overlay_lab_mtu1500",
                 labSkipped = "lab_skipped", labFragmentsCreated = "lab_fragments_created", labReassembled = "lab_reassembled"
        }
    }

    /// Why a run failed.
    public enum BenchmarkError: Error, CustomStringConvertible {
        /// A guest did not get ready, or a transfer did not finish.
        case guest(String)
        /// The lab could not be made or entered.
        case lab(String)

        public var description: String {
            switch self {
            case let .guest(text): return "bulk transfer: \(text)"
            case let .lab(text): return "lab: \(text)"
            }
        }
    }

    /// Runs the three transfers of `bytes` each (the lab one only as root with `lab`).
    public static func run(kernel: String, initrd: String, bytes: Int, lab: LabSettings?, log: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let (one, loopback, _) = try await measure(kernel: kernel, initrd: initrd, bytes: bytes, namespaces: nil)
        log("bulk TCP, one switch: \(one.megabitsPerSecond) Mbit/s; overlay on loopback: \(loopback.megabitsPerSecond) Mbit/s")
        var result = Result(oneSwitch: one, overlayLoopback: loopback)
        guard let lab else {
            result.labSkipped = "no lab script"
            return result
        }
        guard getuid() == 0 else {
            result.labSkipped = "needs root (network namespaces)"
            return result
        }
        let environment = ["HM_LAB_PREFIX": lab.prefix, "HM_LAB_NET": lab.net, "HM_LAB_DIR": NSTemporaryDirectory() + lab.prefix]
        let (status, output) = try runTool("/bin/sh", [lab.script, "up", "2"], environment: environment)
        guard status == 0 else { throw BenchmarkError.lab("\(lab.script) up 2 failed (\(status)): \(output)") }
        defer { _ = try? runTool("/bin/sh", [lab.script, "down"], environment: environment) } // best effort: the next up removes it too
        let hosts = [(lab.prefix + "-1", lab.net + ".1"), (lab.prefix + "-2", lab.net + ".2")]
        let (_, overlay, fragments) = try await measure(kernel: kernel, initrd: initrd, bytes: bytes, namespaces: hosts)
        result.overlayLab = overlay
        result.labFragmentsCreated = fragments.created
        result.labReassembled = fragments.reassembled
        log("bulk TCP, overlay across the lab (MTU 1500): \(overlay.megabitsPerSecond) Mbit/s; \(fragments.created) fragments made, \(fragments.reassembled) datagrams reassembled")
        return result
    }

    /// Two switches (on loopback, or each in one of `namespaces` at its address), a sink guest on
    /// the second, a sender on the second (one switch) then one on the first (overlay).
    static func measure(kernel: String, initrd: String, bytes: Int,
                        namespaces: [(name: String, address: String)]?) async throws -> (Transfer, Transfer, (created: Int, reassembled: Int)) {
        let root = NSTemporaryDirectory() + "hm-bulk-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var switches: [VirtualSwitch] = []
        var guests: [VMProcess] = []
        var relay: Task<Void, Never>?
        func cleanup() async {
            relay?.cancel()
            for guest in guests {
                guest.kill()
                _ = await guest.stop(quitGrace: .milliseconds(200))
            }
            for vswitch in switches { await vswitch.stop() }
            await relay?.value  // ends with the switches' event streams; it must not call onto a loop that is gone
            try? await group.shutdownGracefully() // the threads are ours alone; a failure leaks nothing that outlives the bench
            try? FileManager.default.removeItem(atPath: root) // a temporary directory: leaving it is harmless
        }
        do {
            let loops = [group.next(), group.next()]
            for (index, vswitch) in ["bench-1", "bench-2"].enumerated() {
                var address = try SocketAddress(ipAddress: "127.0.0.1", port: 0)
                if let namespaces {
                    try await enter(namespaces[index].name, on: loops[index])
                    address = try SocketAddress(ipAddress: namespaces[index].address, port: 0)
                }
                switches.append(VirtualSwitch(configuration: .init(hostID: HostID(vswitch), overlayAddress: address), eventLoop: loops[index]))
            }
            let secret = SecretBytes(randomCount: 32)
            for vswitch in switches {
                try await vswitch.start()
                try await vswitch.addNetwork(Network(name: "bench", segment: 1))
            }
            let algorithm = AEADAlgorithm.bulkPreference.first ?? .chacha20poly1305
            try await switches[0].setPeer("bench-2", address: await switches[1].overlayAddress()!, sharedSecret: secret, algorithm: algorithm)
            try await switches[1].setPeer("bench-1", address: await switches[0].overlayAddress()!, sharedSecret: secret, algorithm: algorithm)
            relay = NetworkBenchmark.relayPublishedLocations(between: switches[0], and: switches[1])
            let before = namespaces.map { snmpIP($0[0].name) }, beforeReceiver = namespaces.map { snmpIP($0[1].name) }

            func start(_ name: String, on vswitch: VirtualSwitch, mac: String, ip: String, work: String) async throws -> VMProcess {
                let attachment = PortAttachment(switchSocketPath: "\(root)/\(name).sw", vmSocketPath: "\(root)/\(name).vm")
                try await vswitch.createPort(PortConfiguration(id: PortID(name), network: "bench", mac: MACAddress(mac)!, allowedIPs: [IPPrefix(ip)!]),
                                             attachment: attachment)
                let nic = VMSpec.NIC(id: "eth0", mac: mac, attachment: .dgram(localPath: attachment.vmSocketPath, remotePath: attachment.switchSocketPath))
                let spec = VMSpec(id: name, name: name, memoryMiB: 128, nics: [nic],
                                  boot: .kernel(path: kernel, initrd: initrd, commandLine: "console=ttyS0 quiet"),
                                  accelerator: .auto, extraKernelArguments: ["hm.ip=\(ip)/24", "hm.work=\(work)"])
                let guest = try await VMProcess.launch(spec: spec, directory: VMRuntimeDirectory(path: "\(root)/vm-\(name)"))
                guests.append(guest)
                return guest
            }
            let sink = try await start("sink", on: switches[1], mac: "52:54:00:bb:00:03", ip: "10.77.0.3", work: "bulksink:5001")
            _ = try await waitFor(sink, "BULKRX 5001 listening", count: 1)
            _ = try await start("near", on: switches[1], mac: "52:54:00:bb:00:04", ip: "10.77.0.4", work: "bulk:10.77.0.3:5001:\(bytes)")
            let direct = try await waitFor(sink, "BULKRX 5001 done", count: 1)
            _ = try await start("far", on: switches[0], mac: "52:54:00:bb:00:05", ip: "10.77.0.5", work: "bulk:10.77.0.3:5001:\(bytes)")
            let overlay = try await waitFor(sink, "BULKRX 5001 done", count: 2)
            var fragments = (created: 0, reassembled: 0)
            if let namespaces, let before, let beforeReceiver {
                fragments.created = snmpIP(namespaces[0].name)["FragCreates", default: 0] - before["FragCreates", default: 0]
                fragments.reassembled = snmpIP(namespaces[1].name)["ReasmOKs", default: 0] - beforeReceiver["ReasmOKs", default: 0]
            }
            await cleanup()
            return (direct, overlay, fragments)
        } catch {
            await cleanup()
            throw error
        }
    }

    /// The `count`-th console line of `guest` starting with `prefix`, parsed as a transfer
    /// (or just found, for other lines).
    static func waitFor(_ guest: VMProcess, _ prefix: String, count: Int, timeout: Duration = .seconds(120)) async throws -> Transfer {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let lines = guest.directory.readConsole().split(whereSeparator: \.isNewline).filter { $0.hasPrefix(prefix) }
            if lines.count >= count {
                let line = lines[count - 1]
                func field(_ name: String) -> Int {
                    line.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) } ?? 0
                }
                return Transfer(bytes: field("bytes"), badBytes: field("bad"), milliseconds: field("ms"), retransmittedSegments: field("retrans"))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchmarkError.guest("no \"\(prefix)\" line #\(count) within \(timeout); console tail: \(guest.directory.readConsole().suffix(400))")
    }

    /// Moves the thread of `loop` into the network namespace `name` (`ip netns` makes
    /// `/run/netns/<name>`); sockets made on it afterwards belong to that namespace.
    static func enter(_ name: String, on loop: any EventLoop) async throws {
        try await loop.submit {
            let fd = open("/run/netns/" + name, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BenchmarkError.lab("cannot open /run/netns/\(name): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard enterNamespace(fd, cloneNewNet) == 0 else {
                throw BenchmarkError.lab("setns into \(name) failed: \(String(cString: strerror(errno)))")
            }
        }.get()
    }

    /// The `Ip:` counters of /proc/net/snmp inside namespace `name`.
    static func snmpIP(_ name: String) -> [String: Int] {
        // An empty table when ip(8) cannot run: the fragment figures then read 0, nothing else depends on them.
        guard let (_, text) = try? runTool("/usr/sbin/ip", ["netns", "exec", name, "cat", "/proc/net/snmp"]) else { return [:] }
        let rows = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("Ip: ") }
        guard rows.count >= 2 else { return [:] }
        let names = rows[0].split(separator: " ").dropFirst(), values = rows[1].split(separator: " ").dropFirst()
        return Dictionary(zip(names.map(String.init), values.map { Int($0) ?? 0 }), uniquingKeysWith: { first, _ in first })
    }

    /// Runs a tool to completion with posix_spawn (Foundation's Process would take over SIGCHLD
    /// from the QEMU supervisors); returns its exit status and output.
    static func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "hm-bench-tool-" + UUID().uuidString.prefix(8).lowercased()
        defer { try? FileManager.default.removeItem(atPath: log) } // a temporary file: leaving it is harmless
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw BenchmarkError.lab("cannot start \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exited = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exited, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "") // unreadable output: the status still says how it went
    }
}

/// CLONE_NEWNET of <sched.h> (hidden behind _GNU_SOURCE, like setns).
private let cloneNewNet: Int32 = 0x4000_0000

/// setns(2): not exported by Swift's Glibc module (it needs _GNU_SOURCE).
@_silgen_name("setns")
private func enterNamespace(_ fd: Int32, _ type: Int32) -> Int32
