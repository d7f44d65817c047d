public import NIOCore
import NIOPosix

/// A link between two sites, A and B, emulated in userspace (README, "Long distance"): each direction
/// is a `LinkShaper`, and relays (`relay(…)`) put TCP and UDP endpoints behind it. All relays of
/// one link share its two directions (one bottleneck, one queue per direction) and run on the
/// link's one event loop, so nothing blocks and nothing needs a lock.
///
/// Put the agents of site A and site B behind relays and make them advertise the relays'
/// addresses: then they talk only through the link. Sources named in a relay's
/// `unshapedSourceHosts` (members of the relay's own site) pass unshaped.
public final class EmulatedLink: Sendable {
    /// A direction of the link.
    public enum Direction: Sendable, Equatable {
        case aToB
        case bToA

        var reversed: Direction { self == .aToB ? .bToA : .aToB }
    }

    /// Counters of one direction.
    public struct Counters: Sendable, Equatable {
        /// Datagrams and stream chunks delivered.
        public var delivered: Int
        /// Datagrams lost at random.
        public var droppedLost: Int
        /// Datagrams dropped because the queue was full.
        public var droppedQueueFull: Int
        /// Stream chunks that arrived a round trip late ("retransmitted").
        public var retransmitted: Int
    }

    /// The loop every relay of this link runs on.
    public let eventLoop: any EventLoop
    let shapers: NIOLoopBoundBox<ShaperPair>

    /// A link whose directions have the given conditions.
    public init(aToB: LinkProfile, bToA: LinkProfile, eventLoop: any EventLoop) throws(LinkEmulatorError) {
        try aToB.validate()
        try bToA.validate()
        self.eventLoop = eventLoop
        shapers = NIOLoopBoundBox.makeBoxSendingValue(ShaperPair(aToB: aToB, bToA: bToA), eventLoop: eventLoop)
    }

    /// A symmetric link (the reverse direction draws from a different seed).
    public convenience init(profile: LinkProfile, eventLoop: any EventLoop) throws(LinkEmulatorError) {
        var reverse = profile
        reverse.seed = profile.seed ^ 0x5851_F42D_4C95_7F2D
        try self.init(aToB: profile, bToA: reverse, eventLoop: eventLoop)
    }

    /// Listens on `listenHost:listenPort` (0: any free port, the same number for TCP and UDP)
    /// and relays what arrives to `targetHost:targetPort`; traffic from the client to the
    /// target crosses the link in direction `toward`, the answers in the other direction.
    public func relay(
        listenHost: String, listenPort: Int = 0, targetHost: String, targetPort: Int, toward: Direction,
        tcp: Bool = true, udp: Bool = true, unshapedSourceHosts: Set<String> = []
    ) async throws -> LinkRelay {
        let target: SocketAddress
        do { target = try SocketAddress.makeAddressResolvingHost(targetHost, port: targetPort) } catch {
            throw LinkEmulatorError.relay("target \(targetHost):\(targetPort) is not an address: \(error)")
        }
        return try await relay(listenHost: listenHost, listenPort: listenPort, target: target, toward: toward, tcp: tcp, udp: udp,
                               unshapedSourceHosts: unshapedSourceHosts)
    }

    /// As `relay(listenHost:listenPort:targetHost:targetPort:…)`, to any socket address: a unix
    /// socket target lets a TCP client (QEMU migrating to `tcp:`) reach a unix listener across
    /// the link.
    public func relay(
        listenHost: String, listenPort: Int = 0, target: SocketAddress, toward: Direction,
        tcp: Bool = true, udp: Bool = true, unshapedSourceHosts: Set<String> = []
    ) async throws -> LinkRelay {
        let route = RelayRoute(link: self, target: target, toward: toward, unshapedSourceHosts: unshapedSourceHosts)
        var tcpChannel: (any Channel)?
        var port = listenPort
        if tcp {
            let channel = try await TCPRelay.listen(host: listenHost, port: listenPort, route: route)
            tcpChannel = channel
            port = channel.localAddress?.port ?? listenPort
        }
        var udpChannel: (any Channel)?
        if udp {
            do {
                let channel = try await UDPRelay.listen(host: listenHost, port: port, route: route)
                udpChannel = channel
                port = channel.localAddress?.port ?? port
            } catch {
                try? await tcpChannel?.close() // closing our own listener on the way out; nothing depends on it
                throw LinkEmulatorError.relay("UDP \(listenHost):\(port): \(error)")
            }
        }
        return LinkRelay(tcpListener: tcpChannel, udpSocket: udpChannel, port: port)
    }

    /// The counters of both directions.
    public func counters() async throws -> (aToB: Counters, bToA: Counters) {
        let shapers = self.shapers
        return try await eventLoop.submit {
            let pair = shapers.value
            return (Self.counters(pair.aToB), Self.counters(pair.bToA))
        }.get()
    }

    private static func counters(_ shaper: LinkShaper) -> Counters {
        Counters(delivered: shaper.delivered, droppedLost: shaper.droppedLost,
                 droppedQueueFull: shaper.droppedQueueFull, retransmitted: shaper.retransmitted)
    }
}

/// The two directions' shapers, mutated in place on the link's loop.
final class ShaperPair {
    var aToB: LinkShaper
    var bToA: LinkShaper

    init(aToB: LinkProfile, bToA: LinkProfile) {
        self.aToB = LinkShaper(profile: aToB)
        self.bToA = LinkShaper(profile: bToA)
    }

    func arrive(_ direction: EmulatedLink.Direction, size: Int, kind: LinkShaper.Kind, now: Int64) -> LinkShaper.Verdict {
        switch direction {
        case .aToB: aToB.arrive(size: size, kind: kind, now: now)
        case .bToA: bToA.arrive(size: size, kind: kind, now: now)
        }
    }

    func acceptsStreamData(_ direction: EmulatedLink.Direction, now: Int64) -> Bool {
        switch direction {
        case .aToB: aToB.acceptsStreamData(now: now)
        case .bToA: bToA.acceptsStreamData(now: now)
        }
    }

    func nextDeparture(_ direction: EmulatedLink.Direction) -> Int64? {
        switch direction {
        case .aToB: aToB.nextDeparture
        case .bToA: bToA.nextDeparture
        }
    }
}

/// Where one relay sends, and which way its traffic crosses the link.
struct RelayRoute: Sendable {
    let link: EmulatedLink
    let target: SocketAddress
    let toward: EmulatedLink.Direction
    let unshapedSourceHosts: Set<String>

    func isUnshaped(_ source: SocketAddress?) -> Bool {
        guard let host = source?.ipAddress else { return false }
        return unshapedSourceHosts.contains(host)
    }
}

/// A relay's listeners; `close()` stops them and every connection through them.
public final class LinkRelay: Sendable {
    let tcpListener: (any Channel)?
    let udpSocket: (any Channel)?
    /// The port the relay listens on (TCP and UDP alike).
    public let port: Int

    init(tcpListener: (any Channel)?, udpSocket: (any Channel)?, port: Int) {
        self.tcpListener = tcpListener
        self.udpSocket = udpSocket
        self.port = port
    }

    /// Stops listening and closes every relayed connection and flow.
    public func close() async {
        try? await tcpListener?.close() // our own listener: an error means it was closed already
        try? await udpSocket?.close() // our own socket: an error means it was closed already
    }
}
