import Foundation
import GossipTransport
import Membership
import MeshWire
import Testing

/// Federation grants ride the revocation lists' path (Protocol.md §4.15) over real loopback UDP:
/// verified before the core sees them, spread piggybacked, refused ones dropped and counted, and a
/// member that joins later gets them by push-pull.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct FederationGossipTests {
    /// An encoded FederationGrant of lab for prod; `genuine` stands for "signed by the domain key"
    /// (the agent's verifier checks real signatures: FederationGrantTests, the agent's keeper).
    static func grant(version: UInt64, genuine: Bool, revoked: Bool = false) -> [UInt8] {
        var body = Hostmesh_V1_FederationGrantBody()
        body.format = 1
        body.domain = "lab"
        body.peerDomain = "prod"
        body.version = version
        body.issuerKey = Data(repeating: 7, count: 32)
        body.peerDomainKey = Data(repeating: 8, count: 32)
        body.allVms = true
        body.notBefore = 1
        body.notAfter = 2
        body.revoked = revoked
        var wire = Hostmesh_V1_FederationGrant()
        wire.body = try! body.serializedData()
        wire.signature = Data(repeating: genuine ? 1 : 2, count: 64)
        return [UInt8](try! wire.serializedData())
    }

    static let verifier: @Sendable ([UInt8]) -> String? = { bytes in
        let wire = try? Hostmesh_V1_FederationGrant(serializedBytes: bytes)
        return wire?.signature.first == 1 ? nil : "not signed by the domain key (test)"
    }

    @Test func aGrantAndItsRevocationSpreadAForgedOneIsDroppedALateMemberGetsThemByPushPull() async throws {
        let harness = MeshHarness()
        let keyring = try GossipKeyring(primary: GossipKey.generate())
        let a = harness.makeService("a", keyring: keyring, federationGrantVerifier: { _ in nil }) // passes on anything
        let b = harness.makeService("b", keyring: keyring, federationGrantVerifier: Self.verifier)
        let c = harness.makeService("c", keyring: keyring, federationGrantVerifier: Self.verifier)
        let seed = try await harness.launch(a)
        try await harness.launch(b)
        _ = try await b.join(seeds: [seed])
        #expect(await eventually(within: .seconds(10)) {
            let (na, nb) = (await a.members().count, await b.members().count)
            return na == 2 && nb == 2
        })
        let events = a.events()

        // Published at b: reaches a, which reports it.
        #expect(try await b.learnFederationGrant(Self.grant(version: 1, genuine: true)) == nil)
        #expect(await eventually(within: .seconds(10)) { await a.federationGrantNotices().map(\.version) == [1] })
        var learned: FederationGrantNotice?
        for await event in events { if case .federationGrantLearned(let notice) = event { learned = notice; break } }
        #expect(learned?.key == "lab/prod" && learned?.version == 1)

        // A forged version 2 that a accepts and gossips: b drops and counts it, keeps version 1.
        #expect(try await b.learnFederationGrant(Self.grant(version: 2, genuine: false)) != nil)
        #expect(try await a.learnFederationGrant(Self.grant(version: 2, genuine: false)) == nil)
        #expect(await eventually(within: .seconds(10)) { await b.counters().dropped(.federationGrantRefused) > 0 })
        #expect(await b.federationGrantNotices().map(\.version) == [1])

        // The genuine revocation (version 3) replaces both everywhere.
        #expect(try await b.learnFederationGrant(Self.grant(version: 3, genuine: true, revoked: true)) == nil)
        #expect(await eventually(within: .seconds(10)) { await a.federationGrantNotices().map(\.version) == [3] })

        // c joins afterwards: the push-pull of its join brings the grant held.
        try await harness.launch(c)
        _ = try await c.join(seeds: [seed])
        #expect(await eventually(within: .seconds(10)) { await c.federationGrantNotices().map(\.version) == [3] })
        await harness.shutdown()
    }

    /// The answer to a push-pull this member asked for passes the same check as gossip: a forged
    /// grant that the answering member took unchecked is dropped and counted here, not adopted.
    @Test func aForgedGrantInAPushPullAnswerIsDroppedAndCounted() async throws {
        let harness = MeshHarness()
        let keyring = try GossipKeyring(primary: GossipKey.generate())
        let a = harness.makeService("a", keyring: keyring, federationGrantVerifier: { _ in nil }) // passes on anything
        let b = harness.makeService("b", keyring: keyring, federationGrantVerifier: Self.verifier)
        let seed = try await harness.launch(a)
        #expect(try await a.learnFederationGrant(Self.grant(version: 2, genuine: false)) == nil)
        try await harness.launch(b)
        _ = try await b.join(seeds: [seed]) // b's push-pull: a's answer carries the forged grant
        #expect(await eventually(within: .seconds(10)) { await b.counters().dropped(.federationGrantRefused) > 0 })
        #expect(await b.federationGrantNotices().isEmpty)
        await harness.shutdown()
    }
}
