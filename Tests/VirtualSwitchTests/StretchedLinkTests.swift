import MeshCrypto
import NIOCore
import Testing
@testable import VirtualSwitch

/// Two hosts of two domains, both called `node-1`, carrying one stretched segment (lab's 1 is
/// prod's 7) and not another (Protocol.md §8.9): names, keys, segment ids and locations are
/// translated at the boundary, and nothing else crosses.
@Suite("Stretched link")
struct StretchedLinkTests {
    let allocator = ByteBufferAllocator()
    static let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 9)

    static func pair() throws -> (lab: OverlayEndpoint, prod: OverlayEndpoint, labLink: StretchedLink, prodLink: StretchedLink) {
        let secret = SecretBytes(randomCount: 32)
        let labLink = StretchedLink(localName: "node-1@lab", peerOwnName: "node-1", segments: [1: 7])
        let prodLink = StretchedLink(localName: "node-1@prod", peerOwnName: "node-1", segments: [7: 1])
        var lab = OverlayEndpoint(localHost: "node-1"), prod = OverlayEndpoint(localHost: "node-1")
        try lab.setPeer("node-1@prod", address: address, keys: OverlayKeys.derive(from: secret, localHost: labLink.localName, peerHost: "node-1@prod",
                                                                                  algorithm: .chacha20poly1305), link: labLink)
        try prod.setPeer("node-1@lab", address: address, keys: OverlayKeys.derive(from: secret, localHost: prodLink.localName, peerHost: "node-1@lab",
                                                                                  algorithm: .chacha20poly1305), link: prodLink)
        return (lab, prod, labLink, prodLink)
    }

    @Test func onlyTheStretchedSegmentCrossesUnderEachDomainsOwnId() throws {
        var (lab, prod, _, _) = try Self.pair()
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let sealedOrNil = lab.seal(frame, kind: .frame, segment: 1, to: "node-1@prod", allocator: allocator)
        let sealed = try #require(sealedOrNil)
        let header = try OverlayHeader(parsing: sealed.datagram)
        #expect(header.segment == 7 && header.senderTag == OverlayKeys.hostTag("node-1@lab"))
        guard case let .frame(host, segment, opened, _, _) = prod.open(sealed.datagram, allocator: allocator) else {
            Issue.record("prod did not open lab's frame")
            return
        }
        #expect(host == "node-1@lab" && segment == 7 && opened == frame)
        // And back: prod's 7 arrives on lab's 1.
        let replyOrNil = prod.seal(frame, kind: .frame, segment: 7, to: "node-1@lab", allocator: allocator)
        let reply = try #require(replyOrNil)
        guard case let .frame(from, onLab, _, _, _) = lab.open(reply.datagram, allocator: allocator) else {
            Issue.record("lab did not open prod's frame")
            return
        }
        #expect(from == "node-1@prod" && onLab == 1)
        // A segment that is not stretched is not sent, and not accepted if a peer sends it.
        #expect(lab.seal(frame, kind: .frame, segment: 2, to: "node-1@prod", allocator: allocator) == nil)
        #expect(lab.counters.notStretched == 1)
        let unmappedOrNil = prod.seal(frame, kind: .frame, segment: 7, to: "node-1@lab", allocator: allocator)
        let unmapped = try #require(unmappedOrNil)
        var tampered = unmapped.datagram
        tampered.setInteger(UInt32(9), at: tampered.readerIndex + 4) // the segment is authenticated: a bad tag, not a crossing
        guard case .dropped(.badTag) = lab.open(tampered, allocator: allocator) else {
            Issue.record("an altered segment id was accepted")
            return
        }
    }

    @Test func locationsCrossOnlyOnStretchedSegmentsNamedAsTheGatewaysOwn() throws {
        let (_, _, labLink, prodLink) = try Self.pair()
        let own = MACLocation(mac: .test(1), segment: 1, host: "node-1", sequence: 4, ips: [.test(1)])
        let otherSegment = MACLocation(mac: .test(2), segment: 2, host: "node-1", sequence: 1)
        let domainHost = MACLocation(mac: .test(3), segment: 1, host: "node-2", sequence: 3)
        let behindAnotherLink = MACLocation(mac: .test(4), segment: 1, host: "node-9@prod", sequence: 1)
        let out = labLink.outgoing([own, otherSegment, domainHost, behindAnotherLink], localHost: "node-1") { $0.rawValue.contains("@") }
        // lab's node-1 is its domain's gateway: node-2's MAC goes out as node-1's, with its
        // sequence; nothing behind another link, nothing on a segment that is not stretched.
        #expect(out == [own, MACLocation(mac: .test(3), segment: 1, host: "node-1", sequence: 3)], "sent as lab names it; prod translates")
        // prod receives what lab's switch sent as its own (lab's host id, lab's segment): renamed,
        // on prod's segment; anything naming another host or segment is dropped.
        let received = prodLink.incoming(out + [otherSegment, domainHost], peer: "node-1@lab")
        #expect(received == [MACLocation(mac: .test(1), segment: 7, host: "node-1@lab", sequence: 4, ips: [.test(1)]),
                             MACLocation(mac: .test(3), segment: 7, host: "node-1@lab", sequence: 3)])
        let asSent = labLink.incoming([MACLocation(mac: .test(5), segment: 7, host: "node-1", sequence: 2)], peer: "node-1@prod")
        #expect(asSent == [MACLocation(mac: .test(5), segment: 1, host: "node-1@prod", sequence: 2)])
    }
}
