import Membership
import Testing

@Suite("Codec: gossip datagrams and push-pull states")
struct CodecTests {
    static let metadata = MemberMetadata(
        version: 12, domain: "dc1.example", cores: 64, memoryTotalBytes: 512 << 30, memoryFreeBytes: 123 << 30,
        runningVMs: 17, cpuLoadMilli: 431, migrationsInFlight: 2, health: .degraded, maintenance: true,
        channelAddress: PeerAddress(host: "10.0.0.1", port: 7947), controlAddress: PeerAddress(host: "fd00::1", port: 7948),
        keyFingerprint: Array(0..<32), instanceID: [9, 8, 7, 6, 5, 4, 3, 2])

    static let updates: [MemberUpdate] = [
        .alive(member: "a", incarnation: 3, address: PeerAddress(host: "10.0.0.1", port: 7946), metadata: metadata),
        .alive(member: "b", incarnation: 0, address: PeerAddress(host: "b.example", port: 1), metadata: nil),
        .suspect(member: "c", incarnation: 9, from: "a"),
        .dead(member: "d", incarnation: UInt64.max, from: "b"),
        .left(member: "e", incarnation: 1),
        .metadata(member: "f", metadata: MemberMetadata(version: 1)),
    ]

    @Test("every primary message and update round-trips", arguments: [
        GossipPrimaryMessage?.none,
        .ping(sequence: 1, target: "x"),
        .pingRequest(PingRequest(sequence: 1 << 40, target: "y", targetAddress: PeerAddress(host: "10.1.2.3", port: 65535), wantsNack: true)),
        .ack(sequence: 0),
        .nack(sequence: 77),
    ])
    func datagramRoundTrip(primary: GossipPrimaryMessage?) throws {
        let datagram = GossipDatagram(sender: "node-1", primary: primary, updates: Self.updates)
        let decoded = try GossipCodec.decodeDatagram(GossipCodec.encode(datagram))
        #expect(decoded == datagram)
    }

    @Test("push-pull states round-trip")
    func pushPullRoundTrip() throws {
        let state = PushPullState(
            sender: "a", isJoin: true,
            members: MemberStatus.allCases.enumerated().map { index, status in
                MemberRecord(
                    id: MemberID("m\(index)"), address: PeerAddress(host: "10.0.0.\(index)", port: 7946), status: status,
                    incarnation: UInt64(index), metadata: index.isMultiple(of: 2) ? Self.metadata : nil)
            })
        #expect(try GossipCodec.decodePushPullState(GossipCodec.encode(state)) == state)
    }

    @Test("piggyback cost matches the encoded growth of a datagram")
    func piggybackCostIsExact() {
        var datagram = GossipDatagram(sender: "s", primary: .ack(sequence: 5))
        var size = GossipCodec.encode(datagram).count
        for update in Self.updates {
            datagram.updates.append(update)
            let grown = GossipCodec.encode(datagram).count
            #expect(grown - size == GossipCodec.piggybackCost(of: update))
            size = grown
        }
    }

    @Test("random bytes never crash the decoder: they decode or throw GossipCodecError")
    func randomBytesThrowTypedErrors() {
        var random = SeededRandomGenerator(seed: 0xF022)
        var thrown = 0
        for _ in 0..<5000 {
            let length = random.next(below: 300)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            do {
                _ = try GossipCodec.decodeDatagram(bytes)
            } catch {
                thrown += 1  // typed: `error` is a GossipCodecError
                #expect(!error.description.isEmpty)
            }
            do {
                _ = try GossipCodec.decodePushPullState(bytes)
            } catch {
                thrown += 1
            }
        }
        #expect(thrown > 9000)
    }

    @Test("mutated and truncated valid datagrams never crash the decoder")
    func mutatedDatagrams() {
        let valid = GossipCodec.encode(GossipDatagram(sender: "node-1", primary: .ping(sequence: 9, target: "t"), updates: Self.updates))
        var random = SeededRandomGenerator(seed: 0xBAD)
        for cut in 0..<valid.count {
            _ = try? GossipCodec.decodeDatagram(Array(valid[..<cut]))
        }
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<(1 + random.next(below: 4)) {
                bytes[random.next(below: bytes.count)] = UInt8(truncatingIfNeeded: random.next())
            }
            _ = try? GossipCodec.decodeDatagram(bytes)
        }
    }

    @Test("semantic errors are specific: empty input, missing sender, wrong version, bad port, oversize")
    func specificErrors() {
        #expect(throws: GossipCodecError.unsupportedVersion(message: "gossip datagram", version: 0)) {
            try GossipCodec.decodeDatagram([])
        }
        #expect(throws: GossipCodecError.missingField(message: "gossip datagram", field: "sender")) {
            try GossipCodec.decodeDatagram(GossipCodec.encode(GossipDatagram(sender: "", primary: nil)))
        }
        #expect(throws: GossipCodecError.invalidField(message: "ping request", field: "target_address.port", reason: "0 is not in 1...65535")) {
            try GossipCodec.decodeDatagram(
                GossipCodec.encode(
                    GossipDatagram(
                        sender: "s",
                        primary: .pingRequest(PingRequest(sequence: 1, target: "t", targetAddress: PeerAddress(host: "h", port: 0), wantsNack: false)))))
        }
        #expect(throws: GossipCodecError.tooLarge(message: "gossip datagram", size: 70_000, limit: GossipCodec.maxDatagramBytes)) {
            try GossipCodec.decodeDatagram(Array(repeating: 0, count: 70_000))
        }
        do {
            _ = try GossipCodec.decodeDatagram([0xFF, 0xFF, 0xFF])
            Issue.record("garbage decoded")
        } catch {
            guard case .malformed = error else {
                Issue.record("expected .malformed, got \(error)")
                return
            }
        }
    }

    @Test("the core rejects undecodable bytes without changing state")
    func coreRejectsGarbage() {
        var instance = Fixture.instance(members: 3)
        _ = instance.start(now: Fixture.at(0))
        #expect(throws: GossipCodecError.self) {
            _ = try instance.onDatagram(bytes: [1, 2, 3], from: Fixture.address(1), now: Fixture.at(1))
        }
        let ping = GossipCodec.encode(Fixture.datagram(from: 1, .ping(sequence: 3, target: Fixture.id(0))))
        let directives = try? instance.onDatagram(bytes: ping, from: Fixture.address(1), now: Fixture.at(1))
        #expect(directives?.sends.first?.datagram.primary == .ack(sequence: 3))
    }
}
