import GossipTransport
import Membership
import MeshCrypto
import Testing

/// Signed membership over real loopback UDP (Protocol.md §4.16): real Ed25519 host keys, the
/// certificates carried by push-pull (a test format here: the member id, a zero byte, the
/// 32-byte key; the agent checks real HostCertificates, AgentSignedGossipTests), and a forger
/// that holds the mesh's gossip key but not the other members' host keys.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SignedClaimsGossipTests {
    static func certificate(_ member: MemberID, _ key: SigningKeyPair) -> [UInt8] {
        Array(member.hostID.utf8) + [0] + key.publicKey.bytes
    }

    static let check: @Sendable ([UInt8]) -> CertificateCheck = { bytes in
        guard let zero = bytes.firstIndex(of: 0), bytes.count - zero - 1 == 32 else { return .refused("not a test certificate") }
        return .valid(member: MemberID(String(decoding: bytes[..<zero], as: UTF8.self)), key: Array(bytes[(zero + 1)...]), serial: 1)
    }

    static func service(_ id: MemberID, _ harness: MeshHarness, keyring: GossipKeyring) -> (MembershipService, SigningKeyPair) {
        let key = SigningKeyPair()
        let certificate = Self.certificate(id, key)
        let signed = SignedClaimsConfiguration(
            sign: { key.sign($0) }, ownCertificate: { certificate }, checkCertificate: Self.check)
        return (harness.makeService(id, keyring: keyring, signedClaims: signed), key)
    }

    @Test func forgedAliveAndMetadataClaimsSignedWithTheWrongKeyAreDroppedAndCounted() async throws {
        let harness = MeshHarness()
        let keyring = try GossipKeyring(primary: GossipKey.generate())
        let (a, _) = Self.service("a", harness, keyring: keyring)
        let (b, _) = Self.service("b", harness, keyring: keyring)
        let (c, _) = Self.service("c", harness, keyring: keyring)
        let seed = try await harness.launch(a)
        try await harness.launch(b)
        try await harness.launch(c)
        var capacity = MemberMetadata(domain: "lab", cores: 4)
        capacity = try await b.updateMetadata(capacity)
        // The join path with signed claims: certificates arrive by push-pull, then claims verify.
        _ = try await b.join(seeds: [seed])
        _ = try await c.join(seeds: [seed])
        #expect(await eventually(within: .seconds(10)) {
            let counts = (await a.members().count, await b.members().count, await c.members().count)
            return counts == (3, 3, 3)
        }, "a 3-member mesh with signed claims converges through joins")
        #expect(await eventually(within: .seconds(10)) { await a.members().first { $0.id == "b" }?.member.metadata?.cores == 4 })
        let before = try #require(await a.members().first { $0.id == "b" }?.member)

        // c's operator turned rogue: it holds the gossip key, but signs with its own (or a fresh) key.
        let forger = SigningKeyPair()
        let evil = PeerAddress(host: "127.0.0.1", port: 9)
        let aliveClaim = MembershipClaim.alive(member: "b", incarnation: before.incarnation + 50, address: evil)
        var forgedCapacity = MemberMetadata(version: 1_000, domain: "lab", cores: 4_096, health: .ok)
        forgedCapacity.signature = forger.sign(MembershipClaim.metadata(member: "b", metadata: forgedCapacity).bytes)
        let datagram = GossipDatagram(
            sender: "c", primary: nil,
            updates: [
                .alive(member: "b", incarnation: before.incarnation + 50, address: evil, metadata: nil,
                       signature: forger.sign(aliveClaim.bytes)),
                .metadata(member: "b", metadata: forgedCapacity),
                .alive(member: "b", incarnation: before.incarnation + 60, address: evil, metadata: nil),
            ])
        var sealer = GossipDatagramSealer()
        let socket = try await RawUDPSocket()
        let target = try #require(await a.localAddress())
        try await socket.send(sealer.seal(GossipCodec.encode(datagram), for: "a", with: keyring), to: target)
        #expect(await eventually(within: .seconds(10)) {
            let counters = await a.counters()
            return counters.dropped(.claimForged) >= 2 && counters.dropped(.claimUnsigned) >= 1
        }, "two forged claims and one unsigned claim counted at a")
        let after = try #require(await a.members().first { $0.id == "b" }?.member)
        #expect(after.address == before.address)
        #expect(after.incarnation < before.incarnation + 50)
        #expect(after.metadata?.cores == 4)
        #expect(after.status == .alive)
        await socket.close()
        await harness.shutdown()
    }

    /// A member that only this datagram's sender knows (it joined through a seed that failed)
    /// is learnt by pulling its state where its own alive says its channel listens: the push-pull
    /// of the agent runs over the secure channel, whose port is not the gossip port.
    @Test func anUnknownSenderIsPulledFromAtTheChannelAddressItsAliveNames() async throws {
        let harness = MeshHarness()
        let keyring = try GossipKeyring(primary: GossipKey.generate())
        let (a, _) = Self.service("a", harness, keyring: keyring)
        let (z, zKey) = Self.service("z", harness, keyring: keyring)
        let target = try await harness.launch(a)
        let zGossip = try await harness.launch(z)
        let channel = PeerAddress(host: "127.0.0.1", port: 9)
        harness.answer(z, at: channel, insteadOf: zGossip)
        _ = try await z.updateMetadata(MemberMetadata(domain: "lab", cores: 2, channelAddress: channel))

        // z's own alive, as its probes would carry it: signed by z, whose certificate a lacks.
        let claim = MembershipClaim.alive(member: "z", incarnation: 0, address: zGossip)
        let datagram = GossipDatagram(
            sender: "z", primary: nil,
            updates: [.alive(member: "z", incarnation: 0, address: zGossip,
                             metadata: MemberMetadata(version: 1, domain: "lab", channelAddress: channel),
                             signature: zKey.sign(claim.bytes))])
        var sealer = GossipDatagramSealer()
        let socket = try await RawUDPSocket()
        try await socket.send(sealer.seal(GossipCodec.encode(datagram), for: "a", with: keyring), to: target)
        #expect(await eventually(within: .seconds(10)) { await a.members().contains { $0.id == "z" && $0.member.status == .alive } },
                "a learns z by a pull at z's channel address")
        #expect(await a.counters().dropped(.claimUnknownSigner) >= 1, "before its certificate arrived, z's alive was dropped")
        await socket.close()
        await harness.shutdown()
    }
}
