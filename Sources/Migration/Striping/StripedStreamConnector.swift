import Logging
import MeshWire
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel

/// Opens the stripes of one QEMU connection (Protocol.md §6.14): `stripes` secure channels to the
/// destination, all on QEMU's connection's event loop, each saying in its hello which stream and
/// stripe it carries, sized like any stream (`StreamBuffers`) with the kernel's unsent bytes kept
/// short (`TCP_NOTSENT_LOWAT`) so N stripes do not hold N send buffers of the guest's tail.
enum StripedStreamConnector {
    /// Unsent bytes a stripe's kernel socket may hold before it reports itself full.
    static let notSentLowWater = 64 << 10
    /// What NIO may hold per stripe beyond the kernel: about one record (N stripes together hold
    /// about what one unstriped stream holds).
    static let stripeWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 32 << 10, high: 64 << 10)
    /// Times a stripe refused before it carried anything is tried again (after 0.25, 0.5, 0.75 s).
    static let stripeRetries = 3

    /// Installs the sender on `qemu` and starts connecting its stripes; the initializer's result.
    static func start(qemu: any Channel, stripes: Int, migrationID: String, streamIndex: Int, host: String, port: Int,
                      rateBytesPerSecond: Int?, congestionControl: StreamCongestionControl.Choice,
                      configuration: SecureChannelConfiguration, logger: Logger,
                      predialed: [PredialedChannels.Slot] = [],
                      failed: @escaping @Sendable (String) -> Void,
                      measured: @escaping @Sendable (UInt32) -> Void,
                      carrying: @escaping @Sendable (any Channel) -> Void = { _ in }) -> EventLoopFuture<Void> {
        let sender = StripedStreamSender(stripeCount: stripes)
        do { try qemu.pipeline.syncOperations.addHandler(sender) } catch {
            for slot in predialed { slot.keys.whenSuccess { $0?.close(promise: nil) } } // claimed, so no one else closes them
            return qemu.eventLoop.makeFailedFuture(error)
        }
        let bound = NIOLoopBound(sender, eventLoop: qemu.eventLoop)
        for stripe in 0..<stripes {
            /// Makes `secure` carry this stripe (on the stream's event loop): its hello, then records.
            @Sendable func attach(_ secure: any Channel) throws {
                secure.writeAndFlush(StreamHello.frame(migrationID: migrationID, streamIndex: streamIndex, stripe: (stripe, stripes)),
                                     promise: nil)
                secure.setOption(ChannelOptions.writeBufferWaterMark, value: stripeWaterMark).whenComplete { _ in }
                StreamBuffers.size(secure, sending: true, notSentLowWater: notSentLowWater, share: stripes,
                                    rateBytesPerSecond: rateBytesPerSecond, congestionControl: congestionControl).whenSuccess { rtt in if rtt > 0 { measured(rtt) } }
                let end = SenderStripe()
                try secure.pipeline.syncOperations.addHandler(end)
                bound.value.attach(end, index: stripe)
                carrying(secure)
            }
            /// The stripe's channel failed after it carried the stream (or could not be set up).
            @Sendable func ended(_ error: any Error) {
                if let closed = error as? SecureChannelError, closed.code == .normal, !closed.byPeer {
                    // This side ended the stream (orderly), whether or not the destination's
                    // accept came back first: what the stripe carried follows its message 3, and
                    // a stripe still opening when the stream ended carried nothing. Not a failure.
                    return
                }
                failed("stream \(streamIndex) stripe \(stripe): \(error)")
                logger.warning("migration stripe failed", metadata: ["migration.id": "\(migrationID)", "mesh.reason": "\(error)"])
                qemu.eventLoop.execute { bound.value.failed() }
            }
            @Sendable func dial() {
                Task {
                    var attempt = 0
                    while true {
                        // Set once the stripe carries the stream (its hello written): from then on its end is the stream's.
                        let attached = NIOLockedValueBox(false)
                        do {
                            _ = try await SecureConnection.connectPipeline(
                                host: host, port: port, configuration: configuration, group: qemu.eventLoop, logger: logger, early: true
                            ) { secure, _ in
                                try attach(secure)
                                attached.withLockedValue { $0 = true }
                            }
                            return
                        } catch {
                            // Refused or cut before it carried a byte (a destination's handshake rate limit
                            // or admission cap, with many stripes of several migrations at once): the
                            // destination never saw this stripe, so it tries again while the others carry the stream.
                            if !attached.withLockedValue({ $0 }), attempt < stripeRetries, qemu.isActive {
                                attempt += 1
                                logger.debug("migration stripe refused before it carried the stream; trying again",
                                             metadata: ["migration.id": "\(migrationID)", "migration.stripe": "\(stripe)", "mesh.reason": "\(error)"])
                                try? await Task.sleep(for: .milliseconds(250 * attempt)) // cancelled: the next attempt comes at once, and qemu.isActive decides
                                continue
                            }
                            return ended(error)
                        }
                    }
                }
            }
            guard stripe < predialed.count else {
                dial()
                continue
            }
            // Opened ahead (`PredialedChannels`, on this event loop): carries the stripe once its
            // keys are ready; one that could not be opened, or closed while it waited, is dialled now.
            let slot = predialed[stripe]
            slot.keys.whenComplete { result in
                guard case .success(let secure?) = result, secure.isActive else { return dial() }
                do { try attach(secure) } catch {
                    secure.close(promise: nil)
                    return dial()
                }
                slot.accepted.whenFailure(ended)
            }
        }
        logger.debug("migration stream striped", metadata: ["migration.id": "\(migrationID)", "migration.stripes": "\(stripes)"])
        return qemu.eventLoop.makeSucceededVoidFuture()
    }
}
