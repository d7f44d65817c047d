import GossipTransport
import Testing

@Suite("Gossip keyring and its file")
struct GossipKeyringTests {
    @Test func keyIDIsDerivedFromTheKeyAndStable() throws {
        let bytes = [UInt8](repeating: 7, count: 32)
        let a = try GossipKey(bytes: bytes)
        let b = try GossipKey(bytes: bytes)
        #expect(a.id == b.id)
        #expect(a.id != GossipKey.generate().id)
        #expect(GossipKeyID(hex: a.id.description) == a.id)
        #expect(a.id.description.count == 8)
        #expect(!a.description.contains(String(a.revealForStorage().map { String($0) }.joined())))
    }

    @Test func rejectsKeysOfTheWrongLength() {
        #expect(throws: GossipKeyringError.invalidKeyLength(31)) { try GossipKey(bytes: [UInt8](repeating: 1, count: 31)) }
    }

    @Test func installUseRemove() throws {
        let old = GossipKey.generate()
        let new = GossipKey.generate()
        var ring = try GossipKeyring(primary: old)
        #expect(ring.keyIDs == [old.id])
        try ring.install(new)
        try ring.install(new)  // idempotent
        #expect(ring.primaryID == old.id)
        #expect(Set(ring.keyIDs) == [old.id, new.id])
        try ring.use(new.id)
        #expect(ring.primaryID == new.id)
        #expect(ring.contains(old.id))
        #expect(throws: GossipKeyringError.cannotRemovePrimary(new.id)) { try ring.remove(new.id) }
        try ring.remove(old.id)
        #expect(ring.keyIDs == [new.id])
        #expect(throws: GossipKeyringError.unknownKey(old.id)) { try ring.use(old.id) }
        #expect(throws: GossipKeyringError.unknownKey(old.id)) { try ring.remove(old.id) }
    }

    @Test func fileRoundTrip() throws {
        let primary = GossipKey.generate()
        let other = GossipKey.generate()
        let ring = try GossipKeyring(primary: primary, others: [other])
        let text = GossipKeyringFile.encode(ring)
        let parsed = try GossipKeyringFile.parse(text)
        #expect(parsed.primaryID == primary.id)
        #expect(parsed.keyIDs == ring.keyIDs)
        #expect(parsed.key(other.id)?.hasSameSecret(as: other) == true)
        #expect(String(decoding: text, as: UTF8.self).contains("# key id \(primary.id)"))
    }

    @Test func fileErrorsNameTheLine() throws {
        let hex = String(repeating: "ab", count: 32)
        #expect(throws: GossipKeyringError.noPrimaryKey) { try GossipKeyringFile.parse(Array("key \(hex)\n".utf8)) }
        #expect(throws: GossipKeyringError.multiplePrimaryKeys) {
            try GossipKeyringFile.parse(Array("primary \(hex)\nprimary \(String(repeating: "cd", count: 32))\n".utf8))
        }
        #expect(throws: GossipKeyringError.fileMalformed(line: 3, reason: "the key is not 64 hex digits")) {
            try GossipKeyringFile.parse(Array("# comment\n\nprimary abcd\n".utf8))
        }
        #expect(throws: GossipKeyringError.fileMalformed(line: 1, reason: "unknown kind 'secondary', expected 'primary' or 'key'")) {
            try GossipKeyringFile.parse(Array("secondary \(hex)\n".utf8))
        }
        let ring = try GossipKeyringFile.parse(Array("  primary \(hex)   # the one\r\n".utf8))
        #expect(ring.keyIDs.count == 1)
    }
}
