import GossipTransport
import Membership
import NIOCore
import NIOPosix
import Synchronization

/// Settings short enough for a test on loopback and tolerant enough for a busy 2-core machine.
func testSettings() -> MembershipSettings {
    var settings = MembershipSettings()
    settings.probeInterval = .milliseconds(150)
    settings.probeTimeout = .milliseconds(75)
    settings.indirectNackTimeout = .milliseconds(60)
    settings.gossipInterval = .milliseconds(50)
    settings.pushPullInterval = .seconds(2)
    return settings
}

struct Unreachable: Error, CustomStringConvertible {
    var address: PeerAddress
    var description: String { "nothing listens at \(address)" }
}

/// Several services in one process on 127.0.0.1, each push-pull closure wired straight to the
/// other service's `handlePushPull` (standing in for the secure channel).
final class MeshHarness: Sendable {
    private let registry = Locked<[PeerAddress: MembershipService]>([:])
    private let tasks = Locked<[MemberID: Task<Void, any Error>]>([:])

    /// A service bound to a free loopback port, not yet started.
    func makeService(_ id: MemberID, keyring: GossipKeyring, settings: MembershipSettings = testSettings(),
                     revocationVerifier: (@Sendable ([UInt8]) -> String?)? = nil,
                     federationGrantVerifier: (@Sendable ([UInt8]) -> String?)? = nil,
                     signedClaims: SignedClaimsConfiguration? = nil) -> MembershipService {
        var configuration = MembershipServiceConfiguration(memberID: id, bindHost: "127.0.0.1", bindPort: 0, settings: settings)
        configuration.signedClaims = signedClaims
        configuration.revocationVerifier = revocationVerifier
        configuration.federationGrantVerifier = federationGrantVerifier
        configuration.joinRetry = JoinRetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(100))
        configuration.pushPullTimeout = .seconds(2)
        configuration.leaveTimeout = .seconds(3)
        return MembershipService(configuration: configuration, keyring: keyring) { [registry] peer, request in
            guard let target = registry.withLock({ $0[peer.address] }) else { throw Unreachable(address: peer.address) }
            return try await target.handlePushPull(request, authenticatedPeer: nil)
        }
    }

    /// Starts `service` and runs it in a task; returns its gossip address.
    @discardableResult
    func launch(_ service: MembershipService) async throws -> PeerAddress {
        let address = try await service.start()
        registry.withLock { $0[address] = service }
        let task = Task { try await service.run() }
        tasks.withLock { $0[service.configuration.memberID] = task }
        return address
    }

    /// Makes `service`'s push-pulls answer at `channel` only, not at its gossip address `gossip`
    /// (as the agent's secure channel listens on a port of its own).
    func answer(_ service: MembershipService, at channel: PeerAddress, insteadOf gossip: PeerAddress) {
        registry.withLock {
            $0[gossip] = nil
            $0[channel] = service
        }
    }

    /// The task running `member`'s service.
    func runTask(of member: MemberID) -> Task<Void, any Error>? {
        tasks.withLock { $0[member] }
    }

    /// Stops a member abruptly, as a crash would: its task is cancelled, no leave is sent,
    /// and push-pulls to it fail.
    func crash(_ service: MembershipService) async {
        let address = await service.localAddress()
        if let address { _ = registry.withLock { $0.removeValue(forKey: address) } }
        let task = tasks.withLock { $0.removeValue(forKey: service.configuration.memberID) }
        task?.cancel()
        _ = await task?.result
    }

    /// Stops every member still running.
    func shutdown() async {
        let all = tasks.withLock { tasks in
            defer { tasks = [:] }
            return Array(tasks.values)
        }
        for task in all { task.cancel() }
        for task in all { _ = await task.result }
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(
    within timeout: Duration, every interval: Duration = .milliseconds(50), _ condition: () async -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return await condition()
}

/// The status `observer` has for `member`, if known.
func status(of member: MemberID, at observer: MembershipService) async -> MemberStatus? {
    await observer.members().first { $0.id == member }?.status
}

/// A value shared between tasks and event loops, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}

/// Records every event of a service, in order.
final class EventRecorder: Sendable {
    private let recorded = Locked<[MembershipEvent]>([])
    private let task: Task<Void, Never>

    init(_ service: MembershipService) {
        let stream = service.events()
        let recorded = self.recorded
        task = Task {
            for await event in stream { recorded.withLock { $0.append(event) } }
        }
    }

    deinit { task.cancel() }

    var events: [MembershipEvent] { recorded.value }

    /// The statuses `member` went through, in order.
    func statuses(of member: MemberID) -> [MemberStatus] {
        events.compactMap { event in
            guard case .memberChanged(let change) = event, change.member.id == member else { return nil }
            return change.member.status
        }
    }
}

/// A plain UDP socket on loopback for sending crafted datagrams and reading what comes back.
final class RawUDPSocket: Sendable {
    private let channel: any Channel
    private let received: Locked<[[UInt8]]>

    init() async throws {
        let received = Locked<[[UInt8]]>([])
        self.received = received
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(received))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    func send(_ bytes: [UInt8], to address: PeerAddress) async throws {
        let remote = try SocketAddress(ipAddress: address.host, port: Int(address.port))
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)))
    }

    var datagrams: [[UInt8]] { received.value }

    func close() async {
        try? await channel.close()
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let received: Locked<[[UInt8]]>
        init(_ received: Locked<[[UInt8]]>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).data.readableBytesView)
            received.withLock { $0.append(bytes) }
        }
    }
}
