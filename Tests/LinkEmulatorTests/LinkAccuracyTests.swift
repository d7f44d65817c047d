import LinkEmulator
import NIOCore
import NIOPosix
import Testing

/// The emulator's own accuracy over real sockets: round-trip time and throughput measured
/// through it match the settings within 5% (README, "Long distance"). These are correctness checks of
/// the emulator (a property it promises), measured with enough samples that scheduling noise of
/// a loaded machine stays well inside the margin: medians for the round trip, a transfer of
/// more than a second for the rate.
@Suite("Link emulator: RTT and throughput through it match the settings within 5%", .serialized, .timeLimit(.minutes(2)))
struct LinkAccuracyTests {
    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    @Test("UDP and TCP round trips at 150 ms RTT: medians within 5%")
    func roundTrips() async throws {
        try await withLoops { endpoints, linkLoop in
        let link = try EmulatedLink(profile: LinkProfile(rtt: .milliseconds(150), rateMbit: 250), eventLoop: linkLoop.next())
        let udpEcho = try await TestEndpoints.udpEcho(on: endpoints)
        let tcpEcho = try await TestEndpoints.tcpEcho(on: endpoints)
        let udpRelay = try await link.relay(listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: udpEcho.localAddress!.port!, toward: .aToB, tcp: false)
        let tcpRelay = try await link.relay(listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: tcpEcho.localAddress!.port!, toward: .aToB, udp: false)

        let udp = try await Self.udpRoundTrips(to: udpRelay.port, count: 60, spacing: .milliseconds(20), on: endpoints)
        let tcp = try await Self.tcpRoundTrips(to: tcpRelay.port, count: 15, on: endpoints)
        let udpMedian = Self.median(udp)
        let tcpMedian = Self.median(tcp)
        print("link 150 ms RTT: UDP median \(Double(udpMedian) / 1e6) ms over \(udp.count), TCP median \(Double(tcpMedian) / 1e6) ms over \(tcp.count)")
        #expect(udp.count == 60 && tcp.count == 15)
        #expect(abs(Double(udpMedian) - 150e6) <= 0.05 * 150e6, "UDP median RTT \(Double(udpMedian) / 1e6) ms")
        #expect(abs(Double(tcpMedian) - 150e6) <= 0.05 * 150e6, "TCP median RTT \(Double(tcpMedian) / 1e6) ms")
        // Nothing arrives early: the delay is a floor.
        #expect((udp + tcp).allSatisfy { $0 >= 150_000_000 }, "minimum \(Double((udp + tcp).min() ?? 0) / 1e6) ms")
        await udpRelay.close()
        await tcpRelay.close()
        try await udpEcho.close()
        try await tcpEcho.close()
        }
    }

    @Test("TCP bulk at 80 Mbit/s and UDP at 16 Mbit/s offered three times over: delivered rate within 5%")
    func throughput() async throws {
        try await withLoops { endpoints, linkLoop in
        // TCP: 12 MB at 80 Mbit/s is 1.2 s of transfer behind a 100 ms round trip.
        let tcpLink = try EmulatedLink(profile: LinkProfile(rtt: .milliseconds(100), rateMbit: 80), eventLoop: linkLoop.next())
        let arrivals = endpoints.next().makePromise(of: (Int64, Int64, Int).self)
        let sink = try await TestEndpoints.tcpSink(on: endpoints, arrivals: arrivals)
        let tcpRelay = try await tcpLink.relay(listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: sink.localAddress!.port!, toward: .aToB, udp: false)
        let total = 12_000_000
        let started = Self.now()
        try await Self.sendBulk(total, to: tcpRelay.port, on: endpoints)
        let (first, last, received) = try await arrivals.futureResult.get()
        // The first 64 KiB (the token bucket's depth) arrive at once with the first byte; the rest
        // at the link's rate.
        let tcpRate = Double(received - 65_536) * 8 / (Double(last - first) / 1e9)
        print("link 80 Mbit/s: TCP \(received) B in \(Double(last - first) / 1e6) ms from first byte (\(Double(last - started) / 1e6) ms from start): \(tcpRate / 1e6) Mbit/s")
        #expect(received == total)
        #expect(abs(tcpRate - 80e6) <= 0.05 * 80e6, "TCP delivered \(tcpRate / 1e6) Mbit/s through an 80 Mbit/s link")
        #expect(Double(first - started) >= 50e6, "the first byte came after \(Double(first - started) / 1e6) ms, before the one-way delay")

        // UDP: 3,000 datagrams of 1,000 B in bursts of 30 every 5 ms (48 Mbit/s offered).
        let udpLink = try EmulatedLink(profile: LinkProfile(rtt: .milliseconds(40), rateMbit: 16), eventLoop: linkLoop.next())
        let sinkLoop = endpoints.next()
        let log = NIOLoopBoundBox<[(Int64, Int)]>.makeBoxSendingValue([], eventLoop: sinkLoop)
        let udpSink = try await TestEndpoints.udpSink(on: sinkLoop, log: log)
        let udpRelay = try await udpLink.relay(listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: udpSink.localAddress!.port!, toward: .aToB, tcp: false)
        try await Self.sendDatagrams(3_000, size: 1_000, burst: 30, every: .milliseconds(5), to: udpRelay.port, on: endpoints)
        try await Task.sleep(for: .milliseconds(800)) // the queue (256 KiB) drains in 131 ms; the delay is 20 ms
        let entries = try await sinkLoop.submit { log.value }.get()
        let counters = try await udpLink.counters()
        // The token bucket lets 64 KiB through at line speed over the first bursts; the rate is
        // measured in the steady state after them: from the 200th arrival (which opens the
        // interval) to the last.
        let steady = entries.dropFirst(199)
        let bytes = steady.dropFirst().reduce(0) { $0 + $1.1 }
        let span = Double(steady.last!.0 - steady.first!.0) / 1e9
        let udpRate = Double(bytes) * 8 / span
        print("link 16 Mbit/s: UDP \(entries.count) of 3000 datagrams delivered over \(span * 1000) ms: \(udpRate / 1e6) Mbit/s; dropped by the queue \(counters.aToB.droppedQueueFull)")
        #expect(abs(udpRate - 16e6) <= 0.05 * 16e6, "UDP delivered \(udpRate / 1e6) Mbit/s through a 16 Mbit/s link")
        #expect(counters.aToB.droppedQueueFull > 0 && entries.count + counters.aToB.droppedQueueFull == 3_000)
        await tcpRelay.close()
        await udpRelay.close()
        try await sink.close()
        try await udpSink.close()
        }
    }

    /// Runs `body` with two one-thread event loop groups (the endpoints', the link's) and shuts
    /// them down afterwards, also when it throws.
    func withLoops(_ body: (MultiThreadedEventLoopGroup, MultiThreadedEventLoopGroup) async throws -> Void) async throws {
        let endpoints = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let linkLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await body(endpoints, linkLoop)
        } catch {
            try? await endpoints.shutdownGracefully() // test teardown on failure: the error below is what counts
            try? await linkLoop.shutdownGracefully() // test teardown on failure: the error below is what counts
            throw error
        }
        try await endpoints.shutdownGracefully()
        try await linkLoop.shutdownGracefully()
    }

    @Test("a TCP client reaches a unix-socket listener across the link (QEMU migrating to tcp: into an incoming socket)")
    func tcpToUnixSocket() async throws {
        try await withLoops { endpoints, linkLoop in
            let link = try EmulatedLink(profile: LinkProfile(rtt: .milliseconds(20), rateMbit: 400), eventLoop: linkLoop.next())
            let path = "/tmp/hm-link-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            let arrivals = endpoints.next().makePromise(of: (Int64, Int64, Int).self)
            let sink = try await ServerBootstrap(group: endpoints)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TCPSink(done: arrivals)) }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            let relay = try await link.relay(listenHost: "127.0.0.1", target: try SocketAddress(unixDomainSocketPath: path), toward: .aToB, udp: false)
            try await Self.sendBulk(8_000_000, to: relay.port, on: endpoints)
            let (_, _, received) = try await arrivals.futureResult.get()
            #expect(received == 7_980_000) // 133 chunks of 60,000
            await relay.close()
            try await sink.close()
        }
    }

    static func median(_ values: [Int64]) -> Int64 {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Sends `count` datagrams carrying their send time, `spacing` apart; returns the round trips.
    static func udpRoundTrips(to port: Int, count: Int, spacing: Duration, on group: any EventLoopGroup) async throws -> [Int64] {
        let client = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
            }
        }
        let relay = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        return try await client.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: [Int64]?.self) { tasks in
                tasks.addTask {
                    for _ in 0..<count {
                        var buffer = ByteBuffer()
                        buffer.writeInteger(now())
                        try await outbound.write(AddressedEnvelope(remoteAddress: relay, data: buffer))
                        try await Task.sleep(for: spacing)
                    }
                    return nil
                }
                tasks.addTask {
                    try await Task.sleep(for: .seconds(20))
                    throw LinkEmulatorError.relay("UDP round trips: no answer within 20 s")
                }
                tasks.addTask {
                    var rtts: [Int64] = []
                    for try await envelope in inbound {
                        var data = envelope.data
                        guard let sent = data.readInteger(as: Int64.self) else { continue }
                        rtts.append(now() - sent)
                        if rtts.count == count { break }
                    }
                    return rtts
                }
                while let result = try await tasks.next() {
                    if let rtts = result {
                        tasks.cancelAll()
                        return rtts
                    }
                }
                return []
            }
        }
    }

    /// `count` sequential exchanges of 8 bytes on one TCP connection; returns the round trips.
    static func tcpRoundTrips(to port: Int, count: Int, on group: any EventLoopGroup) async throws -> [Int64] {
        let client = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await client.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var rtts: [Int64] = []
            for _ in 0..<count {
                let sent = now()
                var buffer = ByteBuffer()
                buffer.writeInteger(sent)
                try await outbound.write(buffer)
                var got = 0
                while got < 8 {
                    guard let chunk = try await iterator.next() else { throw LinkEmulatorError.relay("TCP echo closed") }
                    got += chunk.readableBytes
                }
                rtts.append(now() - sent)
            }
            return rtts
        }
    }

    /// Writes `total` bytes, shuts its output (a half close, so nothing still buffered is
    /// discarded) and waits until the relay closes the connection, which it does once the bytes
    /// have crossed the link and the sink has closed.
    static func sendBulk(_ total: Int, to port: Int, on group: any EventLoopGroup) async throws {
        let client = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let chunk = ByteBuffer(repeating: 0x5A, count: 60_000)
        try await client.executeThenClose { inbound, outbound in
            for _ in 0..<(total / 60_000) { try await outbound.write(chunk) }
            outbound.finish()
            for try await _ in inbound {}
        }
    }

    static func sendDatagrams(_ count: Int, size: Int, burst: Int, every: Duration, to port: Int, on group: any EventLoopGroup) async throws {
        let client = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_sndbuf), value: 1 << 20)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        let relay = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let payload = ByteBuffer(repeating: 0xA5, count: size)
        try await client.executeThenClose { _, outbound in
            var sent = 0
            while sent < count {
                let batch = (0..<min(burst, count - sent)).map { _ in AddressedEnvelope(remoteAddress: relay, data: payload) }
                try await outbound.write(contentsOf: batch)
                sent += batch.count
                try await Task.sleep(for: every)
            }
        }
    }
}
