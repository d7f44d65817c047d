import Membership
import MeshCrypto
import Testing

/// Protocol.md §4.16.1 from the code's side: `MembershipClaim.bytes` and the host key's
/// signature give the documented hex (ProtocolDocumentTests recomputes it with libsodium).
@Suite struct SignedClaimVectorCodeTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }

    @Test func theCodeSignsTheDocumentedAliveClaim() throws {
        let claim = MembershipClaim.alive(member: "host-a", incarnation: 7, address: PeerAddress(host: "10.0.0.1", port: 7946))
        #expect(Self.hex(claim.bytes)
            == "686f73746d6573682f676f737369702d636c61696d2f7631010006686f73742d610000000000000007000831302e302e302e311f0a")
        let key = try SigningKeyPair(seed: SecretBytes(Array(1...32)))
        #expect(Self.hex(key.publicKey.bytes) == "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664")
        #expect(Self.hex(key.sign(claim.bytes))
            == "1e5cc7ea0dbd36d166ccca3a57ff0596d500750ba2dbd8158b878dad376a1d9d60f87ef73b66481d142dc2ce051b0a55bfaff371649c88cefcbd2f2a62e43606")
    }
}
