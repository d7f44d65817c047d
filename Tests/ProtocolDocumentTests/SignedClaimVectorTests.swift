import Testing

/// Protocol.md §4.16.1, a signed alive claim, rebuilt from the documented layout and signed with
/// libsodium (the code's side is checked in GossipTransportTests.SignedClaimVectorCodeTests).
@Suite struct SignedClaimVectorTests {
    @Test func libsodiumSignsTheDocumentedAliveClaim() throws {
        let vector = try ProtocolDocument.load().vector("4.16.1 Test vector")
        func hex(_ label: String) throws -> [UInt8] {
            guard let bytes = HexText.decode(try vector.text(label)) else { throw VectorError("§4.16.1 \(label) is not hex") }
            return bytes
        }
        func str(_ value: String) -> [UInt8] { ProtobufWriter.u16(UInt16(value.utf8.count)) + Array(value.utf8) }
        let bytes = Array("hostmesh/gossip-claim/v1".utf8) + [1] + str("host-a") + ProtobufWriter.u64(7) + str("10.0.0.1")
            + ProtobufWriter.u16(7946)
        #expect(try vector.text("claim") == "alive member \"host-a\" incarnation 7 address 10.0.0.1:7946")
        #expect(HexText.encode(bytes) == HexText.encode(try hex("bytes")))
        let keys = Libsodium.signingKeyPair(seed: try hex("seed"))
        #expect(HexText.encode(keys.public) == HexText.encode(try hex("public")))
        #expect(HexText.encode(Libsodium.sign(bytes, secretKey: keys.secret)) == HexText.encode(try hex("signature")))
        #expect(Libsodium.verify(try hex("signature"), bytes, publicKey: keys.public))
    }
}
