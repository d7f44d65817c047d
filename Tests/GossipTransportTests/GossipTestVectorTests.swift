@testable import GossipTransport
import Membership
import Testing

/// The test vector of Protocol.md §4.12.7 (also checked against libsodium called directly from
/// Python), so the text and the code cannot drift apart.
@Suite struct GossipTestVectorTests {
    let key: GossipKey
    let session = GossipSession(epoch: 1_700_000_000_000, salt: 0x01_0203_0405)
    let plaintext = GossipCodec.encode(GossipDatagram(sender: "a", primary: .ping(sequence: 1, target: "b")))
    let datagram = "0205502b46018bcfe568000102030405000000000000000109427eb4e5590aaafbe60eaf43404aea6874fdba121b2ef05863a62a"

    init() throws {
        key = try GossipKey(bytes: Array(0..<32))
    }

    @Test func sealMatchesTheVector() throws {
        #expect(key.id.description == "05502b46")
        #expect(hex(plaintext) == "08011201611a050801120162")
        #expect(hex(GossipEnvelope.sessionSubkey(key: key, session: session))
            == "10ffe8f20229020c089d2e6c9867a20ce2be4019fbbdccef18a30df59e98799d")
        var sealer = GossipDatagramSealer(session: session)
        #expect(hex(sealer.seal(plaintext, for: "b", with: try GossipKeyring(primary: key))) == datagram)
    }

    @Test func openTheVector() throws {
        var opener = GossipDatagramOpener(localID: "b")
        let bytes = stride(from: 0, to: datagram.count, by: 2).map { offset -> UInt8 in
            let start = datagram.index(datagram.startIndex, offsetBy: offset)
            return UInt8(datagram[start..<datagram.index(start, offsetBy: 2)], radix: 16) ?? 0
        }
        let opened = try opener.open(bytes, with: GossipKeyring(primary: key)).get()
        #expect(opened == GossipDatagram(sender: "a", primary: .ping(sequence: 1, target: "b")))
        var elsewhere = GossipDatagramOpener(localID: "c")
        #expect(throws: GossipDrop.self) { try elsewhere.open(bytes, with: GossipKeyring(primary: key)).get() }
    }

    func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
