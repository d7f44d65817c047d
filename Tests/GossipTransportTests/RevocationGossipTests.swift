import Foundation
import GossipTransport
import Membership
import MeshWire
import Testing

/// The shell's side of revocation (Protocol.md §4.14) over real loopback UDP: lists verified
/// before the core sees them, refused ones dropped and counted, revoked senders dropped whole.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct RevocationGossipTests {
    /// An encoded RevocationList; `genuine` stands for "signed by the domain key" in these tests
    /// (the agent's verifier checks real Ed25519 signatures; RevocationProcessTests runs it).
    static func list(version: UInt64, genuine: Bool) -> [UInt8] {
        var entry = Hostmesh_V1_RevocationEntry()
        entry.hostID = "c"
        var body = Hostmesh_V1_RevocationListBody()
        body.format = 1
        body.domain = "lab"
        body.version = version
        body.issuerKey = Data(repeating: 7, count: 32)
        body.entries = [entry]
        var wire = Hostmesh_V1_RevocationList()
        wire.body = try! body.serializedData()
        wire.signature = Data(repeating: genuine ? 1 : 2, count: 64)
        return [UInt8](try! wire.serializedData())
    }

    static let verifier: @Sendable ([UInt8]) -> String? = { bytes in
        let wire = try? Hostmesh_V1_RevocationList(serializedBytes: bytes)
        return wire?.signature.first == 1 ? nil : "not signed by the domain key (test)"
    }

    @Test func aGenuineListSpreadsAForgedOneIsDroppedAndCountedARevokedSenderIsIgnored() async throws {
        let harness = MeshHarness()
        let keyring = try GossipKeyring(primary: GossipKey.generate())
        // "a" is a careless member that passes on anything; "b" and "c" verify.
        let a = harness.makeService("a", keyring: keyring, revocationVerifier: { _ in nil })
        let b = harness.makeService("b", keyring: keyring, revocationVerifier: Self.verifier)
        let c = harness.makeService("c", keyring: keyring, revocationVerifier: Self.verifier)
        let seed = try await harness.launch(a)
        try await harness.launch(b)
        try await harness.launch(c)
        _ = try await b.join(seeds: [seed])
        _ = try await c.join(seeds: [seed])
        #expect(await eventually(within: .seconds(10)) {
            let (nb, nc) = (await b.members().count, await c.members().count)
            return nb == 3 && nc == 3
        })

        // A genuine list published at b reaches a and c.
        #expect(try await b.learnRevocation(Self.list(version: 1, genuine: true)) == nil)
        #expect(await eventually(within: .seconds(10)) {
            let (va, vc) = (await a.revocationState().lists.map(\.version), await c.revocationState().lists.map(\.version))
            return va == [1] && vc == [1]
        })
        // A forged version 2 that a accepts and gossips: b and c drop it, count it, keep version 1.
        #expect(try await b.learnRevocation(Self.list(version: 2, genuine: false)) != nil)
        #expect(try await a.learnRevocation(Self.list(version: 2, genuine: false)) == nil)
        #expect(await eventually(within: .seconds(10)) {
            let (db, dc) = (await b.counters().dropped(.revocationRefused), await c.counters().dropped(.revocationRefused))
            return db > 0 && dc > 0
        })
        #expect(await b.revocationState().lists.map(\.version) == [1])
        #expect(await c.revocationState().lists.map(\.version) == [1])

        // b bans c: c is forgotten at b and its datagrams are dropped as revoked, though it runs on.
        try await b.ban(["c"])
        #expect(await eventually(within: .seconds(10)) { await b.counters().dropped(.revoked) > 0 })
        try await Task.sleep(for: .seconds(1))
        #expect(await !b.members().contains { $0.id == "c" })
        #expect(await b.revocationState().banned == ["c"])
        await harness.shutdown()
    }
}
