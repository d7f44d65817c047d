import Foundation
import Hypervisor
public import Logging
import MeshWire
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
public import SecureChannel

/// Source side of a tunnelled migration (Protocol.md §6.3, §6.7): a unix socket that QEMU
/// migrates to (or, for a disk mirror, that its NBD client connects to). Each connection QEMU
/// opens (one, or one per multifd channel plus the main one, or one per disk) is carried to the
/// destination agent in its own secure channel of the tunnel's purpose, which first says which
/// migration and stream it belongs to. The bytes are never on the network in clear.
public final class OutgoingStreamTunnel: Sendable {
    /// Where QEMU should migrate to: `unix:<socketPath>`.
    public let socketPath: String
    /// Secure channels each QEMU connection is striped across (Protocol.md §6.14); 1: not striped.
    public let stripes: Int
    private let server: any Channel
    private let counters: StreamCounters
    /// Channels opened before QEMU's first connection, for it (nil: each connection dials its own).
    private let predialed: PredialedChannels?

    /// Streams opened so far.
    public var streamsOpened: Int { counters.streams.withLockedValue { $0 } }
    /// Failures while opening streams, as text.
    public var failures: [String] { counters.failures.withLockedValue { $0 } }
    /// The round trip to the destination, ms, as the kernel measured it on the latest stream's
    /// connection once its handshake was done; nil before that or where it cannot be read.
    public var roundTripMs: Double? { counters.roundTripMicroseconds.withLockedValue { $0 }.map { Double($0) / 1000 } }

    private init(socketPath: String, stripes: Int, server: any Channel, counters: StreamCounters, predialed: PredialedChannels?) {
        self.socketPath = socketPath
        self.stripes = stripes
        self.server = server
        self.counters = counters
        self.predialed = predialed
    }

    /// Listens on `socketPath`; every accepted connection is tunnelled to `host:port` for
    /// `migrationID` in a channel of `purpose`. `configuration` should name the destination host
    /// as `expectedPeer`. `linkMbit`, the link's rate where the operator gave it, sizes the send
    /// buffers at distance (Protocol.md §6.11) instead of the 250 Mbit/s assumed otherwise;
    /// `congestionControl` is what its sockets use there.
    /// `predialed`: the first connection's channels, opened before QEMU connects (their count is
    /// then the stripe count). Every QEMU connection is then accepted on their event loop, so it
    /// is for a tunnel whose connections need not spread over threads (one stream, striped or not).
    public static func start(socketPath: String, migrationID: String, host: String, port: Int,
                             purpose: StreamPurpose = .migration,
                             stripes: Int = 1,
                             linkMbit: Int64? = nil,
                             congestionControl: StreamCongestionControl.Choice,
                             predialed: PredialedChannels? = nil,
                             configuration: SecureChannelConfiguration,
                             group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             logger: Logger) async throws -> OutgoingStreamTunnel {
        let stripes = min(max(1, predialed?.count ?? stripes), StreamStriping.maxStripes)
        try? FileManager.default.removeItem(atPath: socketPath) // a stale socket; if it stays, the bind below fails and says so
        var streamConfiguration = configuration
        streamConfiguration.policy.purpose = purpose.rawValue
        let secureConfiguration = streamConfiguration
        let rate = linkMbit.map(MigrationSettings.bytesPerSecond(mbit:))
        let counters = StreamCounters()
        let bootstrap = if let predialed { ServerBootstrap(group: group, childGroup: predialed.eventLoop) } else { ServerBootstrap(group: group) }
        let server: any Channel
        do {
            server = try await bootstrap
                .childChannelOption(.autoRead, value: false)
                // Large reads from QEMU: fewer, bigger records and fewer wake-ups per megabyte.
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20))
                .childChannelInitializer { qemu in
                    let index = counters.nextIndex()
                    // The channels opened ahead are the first connection's; later ones dial their own.
                    let ahead = predialed?.claim() ?? []
                    if let predialed, !ahead.isEmpty {
                        logger.debug("migration stream channels claimed", metadata: ["migration.id": "\(migrationID)", "migration.stripes": "\(ahead.count)",
                                                                                     "migration.padding_bytes": "\(predialed.paddingSent)"])
                    }
                    if stripes > 1 {
                        return StripedStreamConnector.start(qemu: qemu, stripes: stripes, migrationID: migrationID, streamIndex: index,
                                                            host: host, port: port, rateBytesPerSecond: rate, congestionControl: congestionControl,
                                                            configuration: secureConfiguration, logger: logger,
                                                            predialed: ahead,
                                                            failed: { text in counters.failures.withLockedValue { $0.append(text) } },
                                                            measured: { rtt in counters.roundTripMicroseconds.withLockedValue { $0 = rtt } },
                                                            carrying: counters.carry)
                    }
                    @Sendable func carry(_ secure: any Channel) throws {
                        secure.writeAndFlush(StreamHello.frame(migrationID: migrationID, streamIndex: index), promise: nil)
                        secure.setOption(ChannelOptions.writeBufferWaterMark, value: MigrationStreamAcceptor.waterMark(for: purpose.rawValue)).whenComplete { _ in }
                        // Shallow on a LAN, the bandwidth-delay product across a distance (StreamBufferSizing).
                        StreamBuffers.size(secure, sending: true, rateBytesPerSecond: rate, congestionControl: congestionControl).whenSuccess { rtt in
                            if rtt > 0 { counters.roundTripMicroseconds.withLockedValue { $0 = rtt } }
                        }
                        let (toPeer, toQEMU) = GlueHandler.matchedPair()
                        try secure.pipeline.syncOperations.addHandler(toPeer)
                        try qemu.pipeline.syncOperations.addHandler(toQEMU)
                        qemu.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                        counters.carry(secure)
                    }
                    @Sendable func ended(_ error: any Error) {
                        if let closed = error as? SecureChannelError, closed.code == .normal, !closed.byPeer {
                            // QEMU's stream ended and this side closed the channel (orderly) before the
                            // destination's accept came back: what it carried follows its message 3.
                            logger.debug("migration stream closed before the accept", metadata: ["migration.id": "\(migrationID)"])
                            return
                        }
                        counters.failures.withLockedValue { $0.append("stream \(index): \(error)") }
                        logger.warning("migration stream failed", metadata: ["migration.id": "\(migrationID)", "mesh.reason": "\(error)"])
                        qemu.close(promise: nil)
                    }
                    // Connect on QEMU's connection's own event loop so the glue stays on one thread. The
                    // hello and QEMU's first bytes follow message 3 at once (`early`), a round trip sooner
                    // than waiting for the accept: the destination is verified by then (Protocol.md §6.3).
                    @Sendable func dial() {
                        Task {
                            do {
                                _ = try await SecureConnection.connectPipeline(
                                    host: host, port: port, configuration: secureConfiguration, group: qemu.eventLoop, logger: logger, early: true
                                ) { secure, _ in try carry(secure) }
                                logger.debug("migration stream open", metadata: ["migration.id": "\(migrationID)", "migration.stream": "\(purpose.rawValue) \(index)"])
                            } catch {
                                ended(error)
                            }
                        }
                    }
                    guard let slot = ahead.first else {
                        dial()
                        return qemu.eventLoop.makeSucceededVoidFuture()
                    }
                    // Opened ahead on this connection's event loop (`PredialedChannels`): once its keys
                    // are ready QEMU's first bytes go at once; if it could not be opened, dial now.
                    slot.keys.whenComplete { result in
                        // Closed while it waited (the destination went away): dial, and fail as without it.
                        guard case .success(let secure?) = result, secure.isActive else { return dial() }
                        do { try carry(secure) } catch {
                            secure.close(promise: nil)
                            return ended(error)
                        }
                        slot.accepted.whenFailure(ended)
                        logger.debug("migration stream open", metadata: ["migration.id": "\(migrationID)", "migration.stream": "\(purpose.rawValue) \(index)",
                                                                          "migration.opened_ahead": "true"])
                    }
                    return qemu.eventLoop.makeSucceededVoidFuture()
                }
                .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true)
                .get()
        } catch {
            predialed?.close()
            throw error
        }
        return OutgoingStreamTunnel(socketPath: socketPath, stripes: max(1, stripes), server: server, counters: counters, predialed: predialed)
    }

    /// The round trip `channel`'s TCP connection measured, microseconds; 0 where it cannot be read
    /// (then a stream is not striped, as on a LAN).
    public static func roundTrip(of channel: any Channel) async -> UInt32 {
        (try? await TCPRoundTrip.read(channel).get()) ?? 0 // never fails: it recovers to 0
    }

    /// What the kernel measures the connections carrying this tunnel's streams deliver now,
    /// bytes per second, summed (`tcpi_delivery_rate`; stripes together carry one stream); 0 with
    /// no stream open or where it cannot be read.
    public func deliveryRateBytesPerSecond() async -> UInt64 {
        var total: UInt64 = 0
        for channel in counters.carrying.withLockedValue({ Array($0.values) }) {
            // A channel closing meanwhile reads 0 (TCPDeliveryRate recovers): no rate, no error.
            total += (try? await TCPDeliveryRate.read(channel).get()) ?? 0
        }
        return total
    }

    /// Stops accepting new streams (open streams continue until either end closes).
    public func close() async {
        predialed?.close()
        try? await server.close() // best effort: a server already closed (QEMU's end went away) needs nothing more
        try? FileManager.default.removeItem(atPath: socketPath) // best effort: the next start removes a stale socket
    }
}

private final class StreamCounters: Sendable {
    let streams = NIOLockedValueBox(0)
    let failures = NIOLockedValueBox<[String]>([])
    let roundTripMicroseconds = NIOLockedValueBox<UInt32?>(nil)
    /// The secure channels carrying streams now (each stripe its own), until each closes.
    let carrying = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    @Sendable func carry(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        carrying.withLockedValue { $0[key] = channel }
        channel.closeFuture.whenComplete { [carrying] _ in carrying.withLockedValue { _ = $0.removeValue(forKey: key) } }
    }

    func nextIndex() -> Int {
        streams.withLockedValue { n in defer { n += 1 }; return n }
    }
}
