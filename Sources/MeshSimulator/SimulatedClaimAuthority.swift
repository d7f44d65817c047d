public import Membership

/// The simulator's stand-in for Ed25519 claim signatures (Protocol.md §4.16): deterministic,
/// cheap, and 64 bytes long like the real ones, so byte counts stay true. A member's "key" is
/// its id: a signature is a keyed hash of the claim expanded to 64 bytes, which only the same
/// id reproduces. It proves nothing cryptographically; it exercises the core's signing and
/// checking paths (a claim altered in flight or signed as another member is `.forged`).
public struct SimulatedClaimAuthority: ClaimAuthority {
    /// The member that signs.
    public let member: MemberID
    /// Signers whose certificate this member does not hold (their claims are `.unknownSigner`).
    public var unknownSigners: Set<MemberID>

    /// An authority signing as `member`.
    public init(member: MemberID, unknownSigners: Set<MemberID> = []) {
        self.member = member
        self.unknownSigners = unknownSigners
    }

    /// `member`'s signature of `claim`.
    public func sign(_ claim: [UInt8]) -> [UInt8] {
        Self.signature(of: claim, by: member)
    }

    /// Valid when `signature` is what `signer` would produce.
    public func verify(_ claim: [UInt8], signature: [UInt8], signer: MemberID) -> ClaimVerdict {
        if unknownSigners.contains(signer) { return .unknownSigner }
        return signature == Self.signature(of: claim, by: signer) ? .valid : .forged
    }

    /// FNV-1a over the signer's id and the claim, expanded with SplitMix64 to 64 bytes.
    public static func signature(of claim: [UInt8], by signer: MemberID) -> [UInt8] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in signer.hostID.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
        for byte in claim {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        var out: [UInt8] = []
        out.reserveCapacity(64)
        var state = hash
        for _ in 0..<8 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            withUnsafeBytes(of: z.littleEndian) { out += $0 }
        }
        return out
    }
}
