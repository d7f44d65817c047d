import Foundation
import Logging
public import MeshCrypto
import MeshIdentity
import MeshTime
import NIOCore
import NIOPosix
import SecureChannel

/// `hostmesh bench channel`: bulk throughput of the secure channel over loopback beside the raw
/// speed of the same AEAD on one core, measured in the same run (MISSION target: ratio >= 0.7).
public enum ChannelBenchmark {
    /// One run's figures. JSON keys are the ones the issue asks for.
    public struct Result: Codable, Sendable {
        /// The bulk AEAD measured.
        public var aead: String
        /// Raw AEAD speed on one core, MB/s (10^6 bytes): the slower of sealing and opening,
        /// because a channel does both, one on each end, and the slower end sets its pace.
        public var aeadMBs: Double
        /// Raw sealing speed on one core, MB/s.
        public var aeadSealMBs: Double
        /// Raw opening speed on one core, MB/s.
        public var aeadOpenMBs: Double
        /// Channel throughput over loopback, MB/s.
        public var channelMBs: Double
        /// channel / aead (the headline figure; target >= 0.7).
        public var ratio: Double
        /// channel / sealing speed alone, for comparison.
        public var ratioVsSeal: Double
        /// Plain TCP over loopback through the same NIO machinery, no crypto, MB/s (context).
        public var tcpMBs: Double
        /// Record payload size used by both measurements.
        public var recordBytes: Int
        /// Bytes moved per channel round.
        public var bytesPerRound: Int
        /// Rounds measured (medians are reported).
        public var rounds: Int
        /// What it ran on.
        public var machine: String

        enum CodingKeys: String, CodingKey {
            case aead, ratio, rounds, machine
            case aeadMBs = "aead_mb_s", aeadSealMBs = "aead_seal_mb_s", aeadOpenMBs = "aead_open_mb_s", ratioVsSeal = "ratio_vs_seal",
                 channelMBs = "channel_mb_s", tcpMBs = "tcp_mb_s", recordBytes = "record_bytes", bytesPerRound = "bytes_per_round"
        }
    }

    /// Measures `rounds` times (after one warm-up) and reports medians.
    public static func run(aead: AEADAlgorithm, megabytesPerRound: Int = 512, rounds: Int = 3, recordBytes: Int = 256 * 1024) async throws -> Result {
        let total = megabytesPerRound << 20
        let setup = try await Setup.start(aead: aead, recordBytes: recordBytes)
        do {
            let result = try await measure(setup: setup, aead: aead, total: total, rounds: rounds, recordBytes: recordBytes)
            await setup.shutdown()
            return result
        } catch {
            await setup.shutdown()
            throw error
        }
    }

    private static func measure(setup: Setup, aead: AEADAlgorithm, total: Int, rounds: Int, recordBytes: Int) async throws -> Result {
        _ = try rawAEAD(aead: aead, totalBytes: total / 4, recordBytes: recordBytes)
        _ = try await setup.transfer(totalBytes: total / 4)
        var seal: [Double] = [], open: [Double] = [], channel: [Double] = [], tcp: [Double] = []
        for _ in 0..<rounds {
            seal.append(try rawAEAD(aead: aead, totalBytes: total, recordBytes: recordBytes))
            open.append(try rawOpen(aead: aead, totalBytes: total, recordBytes: recordBytes))
            channel.append(try await setup.transfer(totalBytes: total))
            tcp.append(try await PlainTCPTransfer().run(totalBytes: total))
        }
        let s = median(seal), o = median(open), c = median(channel)
        let a = min(s, o)
        return Result(aead: aead.rawValue, aeadMBs: a, aeadSealMBs: s, aeadOpenMBs: o, channelMBs: c, ratio: c / a, ratioVsSeal: c / s,
                      tcpMBs: median(tcp), recordBytes: recordBytes,
                      bytesPerRound: total, rounds: rounds, machine: MachineInfo.summary)
    }

    /// Opens `totalBytes` of records of `recordBytes` through the same API the record layer
    /// uses, on the calling thread: MB/s of wall time (or of the thread's CPU time with `cpuTime`,
    /// which a loaded machine does not inflate).
    static func rawOpen(aead: AEADAlgorithm, totalBytes: Int, recordBytes: Int, cpuTime: Bool = false) throws -> Double {
        let key = try AEADKey(aead, key: SecretBytes(randomCount: 32))
        let aad = [UInt8](repeating: 1, count: 14)
        var sealed = ByteBuffer()
        key.seal(ByteBuffer(repeating: 0x5a, count: recordBytes), counter: 0, aad: aad, appendingTo: &sealed)
        var out = ByteBufferAllocator().buffer(capacity: recordBytes)
        let start = ContinuousClock.now, startCPU = ProcessCPU.threadSeconds()
        var done = 0
        while done < totalBytes {
            out.clear()
            try key.open(sealed, counter: 0, aad: aad, appendingTo: &out)
            done += recordBytes
        }
        let seconds = cpuTime ? ProcessCPU.threadSeconds() - startCPU : (ContinuousClock.now - start).inSeconds
        return Double(done) / 1e6 / seconds
    }

    /// Seals `totalBytes` in records of `recordBytes` through the same API the record layer
    /// uses, on the calling thread: MB/s of wall time (or of the thread's CPU time with `cpuTime`).
    static func rawAEAD(aead: AEADAlgorithm, totalBytes: Int, recordBytes: Int, cpuTime: Bool = false) throws -> Double {
        let key = try AEADKey(aead, key: SecretBytes(randomCount: 32))
        let plaintext = ByteBuffer(repeating: 0x5a, count: recordBytes)
        var out = ByteBufferAllocator().buffer(capacity: recordBytes + 64)
        let aad = [UInt8](repeating: 1, count: 14)
        let start = ContinuousClock.now, startCPU = ProcessCPU.threadSeconds()
        var counter: UInt64 = 0
        var done = 0
        while done < totalBytes {
            out.clear()
            key.seal(plaintext, counter: counter, aad: aad, appendingTo: &out)
            counter += 1
            done += recordBytes
        }
        let seconds = cpuTime ? ProcessCPU.threadSeconds() - startCPU : (ContinuousClock.now - start).inSeconds
        return Double(done) / 1e6 / seconds
    }

    /// Two hosts of one domain on loopback, each on its own event loop thread.
    final class Setup: Sendable {
        let serverGroup: MultiThreadedEventLoopGroup
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener: SecureChannelListener
        let serverTask: Task<Void, any Error>
        let clientConfiguration: SecureChannelConfiguration

        static func start(aead: AEADAlgorithm, recordBytes: Int) async throws -> Setup {
            let domain = try DomainAuthority(name: "bench")
            let now = SecureChannelConfiguration.systemUnixTime()
            func credentials(_ id: String) throws -> ChannelCredentials {
                let identity = try HostIdentity(hostID: id)
                let cert = domain.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
                return ChannelCredentials(identity: identity, certificate: cert, trust: TrustStore(anchors: [domain.trustAnchor]))
            }
            let policy = ChannelPolicy(aeads: [aead], maxRecordPayload: recordBytes)
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            let serverConfiguration = SecureChannelConfiguration(credentials: try credentials("bench-server"), policy: policy)
            let clientConfiguration = SecureChannelConfiguration(credentials: try credentials("bench-client"), policy: policy)
            let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: serverConfiguration,
                                                                group: serverGroup, logger: logger)
            return Setup(listener: listener, serverGroup: serverGroup, clientConfiguration: clientConfiguration)
        }

        private init(listener: SecureChannelListener, serverGroup: MultiThreadedEventLoopGroup, clientConfiguration: SecureChannelConfiguration) {
            self.listener = listener
            self.serverGroup = serverGroup
            self.clientConfiguration = clientConfiguration
            serverTask = Task {
                try await listener.run { connection in
                    // Count bytes; after each round's worth, answer one byte so the client can stop its clock.
                    try? await connection.channel.executeThenClose { inbound, outbound in
                        var expected = 0
                        var received = 0
                        for try await var bytes in inbound {
                            if expected == 0, let announced = bytes.readInteger(as: UInt64.self) { expected = Int(announced) }
                            received += bytes.readableBytes
                            if expected > 0, received >= expected {
                                try await outbound.write(ByteBuffer(bytes: [1]))
                                expected = 0
                                received = 0
                            }
                        }
                    }
                }
            }
        }

        /// One connection, `totalBytes` sent as fast as possible: MB/s from first byte out to the
        /// receiver's acknowledgement of the last.
        func transfer(totalBytes: Int) async throws -> Double {
            let port = listener.localAddress!.port!
            let connection = try await SecureConnection.connect(host: "127.0.0.1", port: port, configuration: clientConfiguration, group: clientGroup,
                                                                logger: Logger(label: "bench"))
            let chunk = ByteBuffer(repeating: 0xa5, count: 1 << 20)
            return try await connection.channel.executeThenClose { inbound, outbound in
                let start = ContinuousClock.now
                var header = ByteBuffer()
                header.writeInteger(UInt64(totalBytes))
                try await outbound.write(header)
                // A bulk producer with flow control, as the migration tunnel is: at most a few
                // writes in flight, each awaited, so memory stays bounded and sealing overlaps
                // with the peer's opening. (NIOAsyncChannel's writer would accept every write
                // before the event loop had a chance to report the channel unwritable.)
                var inFlight: [EventLoopFuture<Void>] = []
                var sent = 0
                while sent < totalBytes {
                    let n = min(chunk.readableBytes, totalBytes - sent)
                    inFlight.append(connection.channel.channel.writeAndFlush(chunk.getSlice(at: 0, length: n)!))
                    sent += n
                    if inFlight.count >= 4 { try await inFlight.removeFirst().get() }
                }
                for f in inFlight { try await f.get() }
                var it = inbound.makeAsyncIterator()
                _ = try await it.next()
                return Double(totalBytes) / 1e6 / (ContinuousClock.now - start).inSeconds
            }
        }

        func shutdown() async {
            await listener.close()
            serverTask.cancel()
            _ = await serverTask.result
            try? await serverGroup.shutdownGracefully()
            try? await clientGroup.shutdownGracefully()
        }
    }
}
