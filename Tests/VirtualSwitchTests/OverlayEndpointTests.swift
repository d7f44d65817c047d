import MeshCrypto
import NIOCore
import Testing
@testable import VirtualSwitch

/// The overlay's datagram layer without sockets: sealing, opening, replay window, keys.
@Suite("Overlay endpoint")
struct OverlayEndpointTests {
    static let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 9)
    let allocator = ByteBufferAllocator()

    /// Two endpoints that are each other's peer, keys derived from one shared secret.
    static func pair(keyID: UInt8 = 0) throws -> (OverlayEndpoint, OverlayEndpoint) {
        let secret = SecretBytes(randomCount: 32)
        var a = OverlayEndpoint(localHost: "host-a"), b = OverlayEndpoint(localHost: "host-b")
        try a.setPeer("host-b", address: address, keys: OverlayKeys.derive(from: secret, localHost: "host-a", peerHost: "host-b",
                                                                            keyID: keyID, algorithm: .chacha20poly1305))
        try b.setPeer("host-a", address: address, keys: OverlayKeys.derive(from: secret, localHost: "host-b", peerHost: "host-a",
                                                                            keyID: keyID, algorithm: .chacha20poly1305))
        return (a, b)
    }

    @Test func framesAndControlMessagesRoundTrip() throws {
        var (a, b) = try Self.pair()
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let (datagram, address) = try unwrap(a.seal(frame, kind: .frame, segment: 100, flags: OverlayHeader.flagForwarded, to: "host-b",
                                                      allocator: allocator))
        #expect(address == Self.address)
        #expect(datagram.readableBytes == OverlayHeader.length + frame.readableBytes + 16)
        let header = try OverlayHeader(parsing: datagram)
        #expect(header == OverlayHeader(kind: .frame, flags: 1, keyID: 0, segment: 100, senderTag: OverlayKeys.hostTag("host-a"), counter: 1))
        let received = b.open(datagram, allocator: allocator)
        guard case let .frame(host, segment, opened, forwarded, _) = received else {
            Issue.record("not opened")
            return
        }
        #expect(host == "host-a" && segment == 100 && forwarded)
        #expect(opened == frame)

        let locations = [MACLocation(mac: .test(1), segment: 100, host: "host-a", sequence: 3, ips: [.test(1), IPAddress("fd00::1")!])]
        let control = try unwrap(a.seal(allocator.buffer(bytes: OverlayControlCodec.encode(locations)), kind: .control, segment: 0,
                                          to: "host-b", allocator: allocator))
        let receivedControl = b.open(control.datagram, allocator: allocator)
        guard case let .control(from, payload) = receivedControl else {
            Issue.record("not opened")
            return
        }
        #expect(from == "host-a")
        #expect(try OverlayControlCodec.decode(payload) == locations)
        #expect(b.counters.datagramsReceived == 2)
    }

    @Test func badTagReplayUnknownHostAndMalformedAreDroppedAndCounted() throws {
        var (a, b) = try Self.pair()
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let (datagram, _) = try unwrap(a.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator))

        var tampered = datagram
        tampered.setInteger(tampered.getInteger(at: 40, as: UInt8.self)! ^ 1, at: 40)
        do { let r = b.open(tampered, allocator: allocator); #expect(isDropped(r, .badTag)) }
        var headerChanged = datagram
        headerChanged.setInteger(UInt32(101), at: 4) // the segment is authenticated too
        do { let r = b.open(headerChanged, allocator: allocator); #expect(isDropped(r, .badTag)) }

        do { let r = b.open(datagram, allocator: allocator); #expect(!isDropped(r, .replay)) }
        do { let r = b.open(datagram, allocator: allocator); #expect(isDropped(r, .replay)) }

        var stranger = OverlayEndpoint(localHost: "host-x")
        try stranger.setPeer("host-b", address: Self.address, keys: OverlayKeys.derive(from: SecretBytes(randomCount: 32), localHost: "host-x",
                                                                                       peerHost: "host-b", keyID: 0, algorithm: .chacha20poly1305))
        let (foreign, _) = try unwrap(stranger.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator))
        do { let r = b.open(foreign, allocator: allocator); #expect(isDropped(r, .unknownHost)) }

        do { let r = b.open(allocator.buffer(bytes: [1, 1, 0, 0]), allocator: allocator); #expect(isDropped(r, .malformed)) }
        var version2 = datagram
        version2.setInteger(UInt8(2), at: 0)
        do { let r = b.open(version2, allocator: allocator); #expect(isDropped(r, .unknownVersion)) }
        #expect(b.counters[.badTag] == 2 && b.counters[.replay] == 1 && b.counters[.unknownHost] == 1)
        #expect(b.counters[.malformed] == 1 && b.counters[.unknownVersion] == 1)
        #expect(b.counters.datagramsReceived == 1)
        // Sending to a host that is not a peer is refused.
        let refused = a.seal(frame, kind: .frame, segment: 100, to: "host-z", allocator: allocator)
        #expect(refused == nil)
        #expect(a.counters.noPeer == 1)
    }

    @Test func reorderingWithinTheWindowIsAcceptedOlderIsNot() throws {
        var (a, b) = try Self.pair()
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        var datagrams: [ByteBuffer] = []
        for _ in 0..<3000 { datagrams.append(try unwrap(a.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram) }
        do { let r = b.open(datagrams[2999], allocator: allocator); #expect(!isDropped(r, nil)) }     // counter 3000
        do { let r = b.open(datagrams[1500], allocator: allocator); #expect(!isDropped(r, nil)) }     // 1501: within 2048
        do { let r = b.open(datagrams[500], allocator: allocator); #expect(isDropped(r, .replay)) }   // 501: too old
        do { let r = b.open(datagrams[1500], allocator: allocator); #expect(isDropped(r, .replay)) }  // seen
    }

    @Test func bothEndsDeriveTheSameKeysAndKeyID() throws {
        let secret = SecretBytes(randomCount: 32)
        let a = try OverlayKeys.derive(from: secret, localHost: "host-a", peerHost: "host-b", algorithm: .chacha20poly1305)
        let b = try OverlayKeys.derive(from: secret, localHost: "host-b", peerHost: "host-a", algorithm: .chacha20poly1305)
        #expect(a.keyID == b.keyID)
        let sealed = a.send.seal([1, 2, 3], counter: 7)
        #expect(try b.receive.open(sealed, counter: 7) == [1, 2, 3])
        #expect(throws: (any Error).self) { try a.receive.open(sealed, counter: 7) }
        #expect(OverlayKeys.hostTag("host-a") != OverlayKeys.hostTag("host-b"))
    }

    @Test func rekeyKeepsThePreviousKeyUntilRetired() throws {
        var (a, b) = try Self.pair(keyID: 1)
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let old = try unwrap(a.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram
        let secret = SecretBytes(randomCount: 32)
        try a.setPeer("host-b", address: Self.address, keys: OverlayKeys.derive(from: secret, localHost: "host-a", peerHost: "host-b",
                                                                                 keyID: 2, algorithm: Self.rekeyAlgorithm))
        try b.setPeer("host-a", address: Self.address, keys: OverlayKeys.derive(from: secret, localHost: "host-b", peerHost: "host-a",
                                                                                 keyID: 2, algorithm: Self.rekeyAlgorithm))
        let new = try unwrap(a.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram
        #expect(try OverlayHeader(parsing: new).keyID == 2)
        do { let r = b.open(new, allocator: allocator); #expect(!isDropped(r, nil)) }
        do { let r = b.open(old, allocator: allocator); #expect(!isDropped(r, nil), "in flight during the rekey") }
        b.retirePreviousKeys("host-a")
        var stale = old
        stale.setInteger(UInt64(99), at: 16)
        do { let r = b.open(stale, allocator: allocator); #expect(isDropped(r, .unknownKey)) }
    }

    static let rekeyAlgorithm: AEADAlgorithm = AEADAlgorithm.aes256gcm.isAvailable ? .aes256gcm : .xchacha20poly1305

    func isDropped(_ received: OverlayReceived, _ reason: OverlayDropReason?) -> Bool {
        guard case let .dropped(actual) = received else { return false }
        return reason == nil || actual == reason
    }
}
