import Testing

/// Protocol.md §4.12.7, the gossip datagram vector, recomputed from libsodium calls (the code's
/// side is checked in GossipTransportTests.GossipTestVectorTests against the same hex).
@Suite struct GossipVectorTests {
    @Test func libsodiumSealsTheDocumentedGossipDatagram() throws {
        let vector = try ProtocolDocument.load().vector("4.12.7 Test vector")
        func first(_ label: String) throws -> [UInt8] {
            let token = try vector.text(label).split(separator: " ").first.map(String.init) ?? ""
            guard let bytes = HexText.decode(token) else { throw VectorError("§4.12.7 \(label) is not hex") }
            return bytes
        }
        let key = try first("K"), plaintext = try first("plaintext"), receiver = try first("receiver")
        let keyID = Array(Libsodium.blake2b(Array("hostmesh-gossip-v1 key id".utf8), key: key, length: 16).prefix(4))
        #expect(try vector.text("key") == "id     \(HexText.encode(keyID))")
        let session: [UInt8] = [0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05] // epoch 1700000000000, salt 0x0102030405
        let subkey = Libsodium.blake2b(Array("hostmesh-gossip-v1 datagram".utf8) + session, key: key, length: 32)
        #expect(HexText.encode(subkey) == HexText.encode(try first("subkey")))
        #expect(receiver == Array("b".utf8), "the vector's receiver is the ping's target, member \"b\"")
        let header = [2] + keyID + session + ProtobufWriter.u64(1)
        // The receiver's member id follows the header in the AAD and is not sent (§4.12.1).
        let sealed = Libsodium.xchachaPoly(key: subkey, counter: 1, aad: header + receiver, plaintext)
        #expect(HexText.encode(header + sealed) == HexText.encode(try first("datagram")))
    }
}
