import Foundation
import MeshCrypto
import NIOCore
import NIOPosix
public import VirtualSwitch

/// The measurement behind `hostmesh bench network`'s throughput rows: echo traffic to a real
/// guest through the encrypted overlay between two switches, beside the same traffic on one
/// switch, and the guest-to-guest ping round trip both ways, in one run.
///
/// Layout (two switches in this process, each on its own event loop and UDP socket on
/// 127.0.0.1): the target guest T (`echo:7`) and a guest D (`ping:T`) on switch 2; a guest O
/// (`ping:T`) on switch 1. Phase 1: D and O ping T for `pingPhase` (guest-to-guest RTT, direct
/// vs overlay, from the guests' own `PING` lines). Phase 2: a synthetic NIC on switch 2 floods
/// T with `window` ICMP echo requests of `payloadBytes` in flight for `duration` (direct).
/// Phase 3: the same from a synthetic NIC on switch 1 (through the overlay).
///
/// The test guest has no bulk-transfer workload, so throughput is echo throughput: the guest's
/// kernel answers every request, and the figures include the guest (TCG) as well as the switch.
public enum NetworkBenchmark {
    /// What the caller's launcher must start: a test guest with one NIC on `attachment`.
    public struct GuestRequest: Sendable {
        /// VM id / name.
        public var name: String
        /// The NIC's MAC.
        public var mac: MACAddress
        /// `hm.ip`, with prefix (`10.77.0.3/24`).
        public var ipWithPrefix: String
        /// `hm.work`.
        public var work: String
        /// The NIC's sockets: QEMU's `local.path` = `vmSocketPath`, `remote.path` = `switchSocketPath`.
        public var attachment: PortAttachment
        /// A fresh runtime directory for the VM.
        public var directory: String
    }

    /// A running guest the benchmark can read and stop.
    public protocol Guest: Sendable {
        /// The serial console so far.
        func console() async -> String
        /// Stops the guest (always returns with QEMU gone).
        func stop() async
    }

    /// Starts a guest for a request (e.g. with `VMProcess.launch`, TCG, 128 MiB, the test guest).
    public typealias Launcher = @Sendable (GuestRequest) async throws -> any Guest

    /// Tunables.
    public struct Options: Sendable {
        /// Length of each echo phase.
        public var duration: Duration = .seconds(3)
        /// Length of the guest-to-guest ping phase.
        public var pingPhase: Duration = .seconds(3)
        /// ICMP payload per request (1472 fills a 1500-byte MTU).
        public var payloadBytes: Int = 1400
        /// Requests in flight.
        public var window: Int = 32
        /// How long the guests may take to boot and answer.
        public var bootTimeout: Duration = .seconds(60)
        /// A directory for sockets and VM runtime directories (short: unix socket paths).
        public var directory: String

        /// Options writing under `directory`.
        public init(directory: String) { self.directory = directory }
    }

    /// One arm of the comparison.
    public struct Arm: Sendable, Codable, Hashable {
        /// Echo replies per second.
        public var echoesPerSecond: Double
        /// Ethernet bytes per second, requests and replies together, as megabits per second.
        public var megabitsPerSecond: Double
        /// Median round trip of the echo flood, microseconds.
        public var rttMedianMicroseconds: Double
        /// 99th percentile round trip of the echo flood, microseconds.
        public var rttP99Microseconds: Double
        /// Requests never answered.
        public var lost: Int
        /// Guest-to-guest ping round trip (mean of the guest's per-second `rtt_us`), microseconds.
        public var guestPingRTTMicroseconds: Double?
    }

    /// The comparison.
    public struct Result: Sendable, Codable, Hashable {
        /// Both ends on one switch.
        public var direct: Arm
        /// Through the encrypted overlay between two switches.
        public var overlay: Arm
        /// ICMP payload bytes per request.
        public var payloadBytes: Int
        /// Requests in flight.
        public var window: Int
        /// Overlay throughput relative to direct.
        public var overlayToDirect: Double { direct.megabitsPerSecond > 0 ? overlay.megabitsPerSecond / direct.megabitsPerSecond : 0 }
    }

    /// Why the benchmark could not run.
    public enum BenchmarkError: Error, CustomStringConvertible {
        /// A guest did not print `HOSTMESH-GUEST ready` in time.
        case guestNotReady(String, console: String)
        /// The echo probe failed.
        case probe(String)

        public var description: String {
            switch self {
            case let .guestNotReady(name, console):
                return "guest \(name) did not become ready: check QEMU and the test guest (console tail: \(console.suffix(300)))"
            case let .probe(reason):
                return "echo probe failed: \(reason)"
            }
        }
    }

    /// Runs the three phases and returns both arms.
    public static func measure(launch: Launcher, options: Options) async throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var guests: [any Guest] = []
        var switches: [VirtualSwitch] = []
        var relay: Task<Void, Never>?
        func cleanup() async {
            relay?.cancel()
            for guest in guests { await guest.stop() }
            for vswitch in switches { await vswitch.stop() }
            await relay?.value  // ends with the switches' event streams; it must not call onto a loop that is gone
            try? await group.shutdownGracefully()
        }
        do {
            let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 0)
            let one = VirtualSwitch(configuration: .init(hostID: "bench-1", overlayAddress: loopback), eventLoop: group.next())
            let two = VirtualSwitch(configuration: .init(hostID: "bench-2", overlayAddress: loopback), eventLoop: group.next())
            switches = [one, two]
            let secret = SecretBytes(randomCount: 32)
            for vswitch in switches {
                try await vswitch.start()
                try await vswitch.addNetwork(Network(name: "bench", segment: 1))
            }
            let algorithm = AEADAlgorithm.bulkPreference.first ?? .chacha20poly1305
            try await one.setPeer("bench-2", address: await two.overlayAddress()!, sharedSecret: secret, algorithm: algorithm)
            try await two.setPeer("bench-1", address: await one.overlayAddress()!, sharedSecret: secret, algorithm: algorithm)
            relay = relayPublishedLocations(between: one, and: two)

            let root = options.directory
            func attach(_ name: String, on vswitch: VirtualSwitch, mac: MACAddress, ip: String) async throws -> PortAttachment {
                let attachment = PortAttachment(switchSocketPath: "\(root)/\(name).sw", vmSocketPath: "\(root)/\(name).vm")
                try await vswitch.createPort(PortConfiguration(id: PortID(name), network: "bench", mac: mac, allowedIPs: [IPPrefix(ip)!]),
                                             attachment: attachment)
                return attachment
            }
            let target = "10.77.0.3"
            let plan: [(String, VirtualSwitch, MACAddress, String, String)] = [
                ("t", two, MACAddress("52:54:00:be:00:03")!, target, "echo:7"),
                ("d", two, MACAddress("52:54:00:be:00:04")!, "10.77.0.4", "ping:\(target)"),
                ("o", one, MACAddress("52:54:00:be:00:05")!, "10.77.0.5", "ping:\(target)"),
            ]
            for (name, vswitch, mac, ip, work) in plan {
                let attachment = try await attach(name, on: vswitch, mac: mac, ip: ip)
                guests.append(try await launch(GuestRequest(name: "bench-\(name)", mac: mac, ipWithPrefix: "\(ip)/24", work: work,
                                                            attachment: attachment, directory: "\(root)/vm-\(name)")))
            }
            for (index, guest) in guests.enumerated() {
                let deadline = ContinuousClock.now + options.bootTimeout
                while await !guest.console().contains("HOSTMESH-GUEST ready") {
                    guard ContinuousClock.now < deadline else { throw BenchmarkError.guestNotReady(plan[index].0, console: await guest.console()) }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            // Phase 1: the pingers' own round trips.
            let consolesBefore = [await guests[1].console(), await guests[2].console()]
            try await Task.sleep(for: options.pingPhase)
            let directRTT = meanRTT(await guests[1].console(), after: consolesBefore[0])
            let overlayRTT = meanRTT(await guests[2].console(), after: consolesBefore[1])

            // Phases 2 and 3: echo floods from synthetic NICs.
            let directProbe = try await probe(on: two, name: "pd", mac: MACAddress("52:54:00:be:00:10")!, ip: "10.77.0.10", target: target,
                                              root: root, options: options)
            let overlayProbe = try await probe(on: one, name: "po", mac: MACAddress("52:54:00:be:00:11")!, ip: "10.77.0.11", target: target,
                                               root: root, options: options)
            await cleanup()
            return Result(direct: arm(directProbe, guestRTT: directRTT), overlay: arm(overlayProbe, guestRTT: overlayRTT),
                          payloadBytes: options.payloadBytes, window: options.window)
        } catch {
            await cleanup()
            throw error
        }
    }

    private static func probe(on vswitch: VirtualSwitch, name: String, mac: MACAddress, ip: String, target: String, root: String,
                              options: Options) async throws -> EchoProbeResult {
        let attachment = PortAttachment(switchSocketPath: "\(root)/\(name).sw", vmSocketPath: "\(root)/\(name).vm")
        try await vswitch.createPort(PortConfiguration(id: PortID(name), network: "bench", mac: mac, allowedIPs: [IPPrefix(ip)!]),
                                     attachment: attachment)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: EchoProbeResult.self)
        let settings = EchoProbe.Settings(mac: mac, ip: IPAddress(ip)!, target: IPAddress(target)!,
                                          switchAddress: try SocketAddress(unixDomainSocketPath: attachment.switchSocketPath),
                                          payloadBytes: options.payloadBytes, window: options.window, duration: TimeAmount(options.duration),
                                          resolveTimeout: .seconds(10), identifier: UInt16.random(in: 1...0xFFFF),
                                          senderPath: attachment.vmSocketPath + "s")
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(EchoProbe(settings: settings, done: done))
                }
            }
            .bind(unixDomainSocketPath: attachment.vmSocketPath, cleanupExistingSocketFile: true).get()
        defer { channel.close(promise: nil) }
        do {
            let result = try await done.futureResult.get()
            try await vswitch.removePort(PortID(name))
            return result
        } catch {
            throw BenchmarkError.probe("\(error)")
        }
    }

    private static func arm(_ result: EchoProbeResult, guestRTT: Double?) -> Arm {
        let seconds = max(Double(result.elapsedNanoseconds) / 1e9, 1e-9)
        let sorted = result.rttNanoseconds.sorted()
        func percentile(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
        }
        return Arm(echoesPerSecond: Double(result.replies) / seconds, megabitsPerSecond: Double(result.bytes) * 8 / seconds / 1e6,
                   rttMedianMicroseconds: percentile(0.5), rttP99Microseconds: percentile(0.99), lost: result.lost,
                   guestPingRTTMicroseconds: guestRTT)
    }

    /// Mean `rtt_us` of the `PING` lines printed after `earlier`.
    static func meanRTT(_ console: String, after earlier: String) -> Double? {
        let fresh = console.hasPrefix(earlier) ? String(console.dropFirst(earlier.count)) : console
        let values = fresh.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PING ") }.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("rtt_us=") }.flatMap { Double($0.dropFirst(7)) }
        }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    /// Relays each switch's `publish` events to the other (what the agents' gossip does).
    static func relayPublishedLocations(between one: VirtualSwitch, and two: VirtualSwitch) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                for (source, sink) in [(one, two), (two, one)] {
                    group.addTask {
                        for await event in source.events {
                            if case let .publish(locations) = event { await sink.applyLocations(locations) }
                        }
                    }
                }
            }
        }
    }
}
