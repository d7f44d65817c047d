import MeshCrypto
import NIOCore
import Testing
import VirtualSwitch

/// Protocol.md §14.4: one overlay datagram carrying an Ethernet frame from node-a to node-b
/// (§8.2-8.3). Checked against VirtualSwitch's public overlay API and against libsodium.
@Suite struct OverlayVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.4 Overlay datagram") }

    static let segment: UInt32 = 42

    @Test func theCodeSealsAndOpensTheDocumentedDatagram() throws {
        let secret = SecretBytes(try vector.bytes("secret"))
        let address = try SocketAddress(ipAddress: "192.0.2.1", port: 4789)
        var a = OverlayEndpoint(localHost: "node-a")
        try a.setPeer("node-b", address: address,
                      keys: OverlayKeys.derive(from: secret, localHost: "node-a", peerHost: "node-b", algorithm: .xchacha20poly1305))
        expectHex(ProtobufWriter.u64(a.localTag), vector, "tag_a", by: "the code")
        guard let sealed = a.seal(ByteBuffer(bytes: try vector.bytes("frame")), kind: .frame, segment: Self.segment, to: "node-b",
                                  allocator: ByteBufferAllocator()) else {
            Issue.record("node-a has no peer node-b")
            return
        }
        expectHex(Array(sealed.datagram.readableBytesView), vector, "datagram", by: "the code")

        var b = OverlayEndpoint(localHost: "node-b")
        try b.setPeer("node-a", address: address,
                      keys: OverlayKeys.derive(from: secret, localHost: "node-b", peerHost: "node-a", algorithm: .xchacha20poly1305))
        guard case .frame(let from, let segment, let frame, let forwarded, _) = b.open(ByteBuffer(bytes: try vector.bytes("datagram")),
                                                                                   allocator: ByteBufferAllocator()) else {
            Issue.record("node-b does not open the documented datagram")
            return
        }
        #expect(from == "node-a" && segment.rawValue == Self.segment && !forwarded)
        #expect(Array(frame.readableBytesView) == (try vector.bytes("frame")))
    }

    @Test func libsodiumSealsTheDocumentedDatagram() throws {
        let secret = try vector.bytes("secret")
        let key = Libsodium.blake2b(Array("hostmesh-vswitch-v1 key node-a -> node-b".utf8), key: secret, length: 32)
        expectHex(key, vector, "key_a_to_b", by: "libsodium")
        let keyID = Libsodium.blake2b(Array("hostmesh-vswitch-v1 key id".utf8), key: secret, length: 16)[0]
        expectHex([keyID], vector, "key_id", by: "libsodium")
        let tag = Array(Libsodium.blake2b(Array("hostmesh-vswitch-v1 host node-a".utf8), length: 16).prefix(8))
        expectHex(tag, vector, "tag_a", by: "libsodium")
        let counter: UInt64 = 1
        let header = [1, 1, 0, keyID] + ProtobufWriter.u32(Self.segment) + tag + ProtobufWriter.u64(counter)
        let sealed = Libsodium.xchachaPoly(key: key, counter: counter, aad: header, try vector.bytes("frame"))
        expectHex(header + sealed, vector, "datagram", by: "libsodium")
    }
}
