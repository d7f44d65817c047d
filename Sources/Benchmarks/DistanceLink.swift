import LinkEmulator
import NIOCore
import NIOPosix

/// The emulated long-distance link a benchmark runs across (`--rtt-ms`, `--rate-mbit`).
public struct DistanceLink: Sendable, Equatable {
    /// Round trip, ms.
    public var rttMs: Int
    /// Rate, Mbit/s.
    public var rateMbit: Double

    /// A link of `rttMs` round trip and `rateMbit` Mbit/s.
    public init(rttMs: Int, rateMbit: Double) {
        self.rttMs = rttMs
        self.rateMbit = rateMbit
    }

    /// The emulator's profile: the round trip split evenly, the rate, a queue of one
    /// bandwidth-delay product, no loss, no jitter.
    var profile: LinkProfile { LinkProfile(rtt: .milliseconds(rttMs), rateMbit: rateMbit) }
}

/// One emulated link for a whole benchmark run (source site A, destination site B): a relay in
/// front of the destination agent's channel for the tunnel, and one per direct migration in
/// front of the destination QEMU's incoming socket. Both paths cross the same link (one queue
/// per direction), one at a time.
final class LinkUnderTest: Sendable {
    let group: MultiThreadedEventLoopGroup
    let link: EmulatedLink
    let tunnelRelay: LinkRelay
    var tunnelPort: Int { tunnelRelay.port }

    private init(group: MultiThreadedEventLoopGroup, link: EmulatedLink, tunnelRelay: LinkRelay) {
        self.group = group
        self.link = link
        self.tunnelRelay = tunnelRelay
    }

    static func start(_ distance: DistanceLink, tunnelTarget: Int) async throws -> LinkUnderTest {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let link = try EmulatedLink(profile: distance.profile, eventLoop: group.next())
        let relay = try await link.relay(listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: tunnelTarget, toward: .aToB, udp: false)
        return LinkUnderTest(group: group, link: link, tunnelRelay: relay)
    }

    /// A relay from a fresh TCP port to the unix socket a destination QEMU listens on.
    func directRelay(to socketPath: String) async throws -> LinkRelay {
        try await link.relay(listenHost: "127.0.0.1", target: try SocketAddress(unixDomainSocketPath: socketPath), toward: .aToB, udp: false)
    }

    func stop() {
        let group = self.group
        let relay = tunnelRelay
        Task {
            await relay.close()
            try? await group.shutdownGracefully() // the benchmark is over; a late error changes nothing
        }
    }
}
