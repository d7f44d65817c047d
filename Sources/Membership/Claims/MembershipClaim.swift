/// A statement in gossip that its author signs with its host key (Protocol.md §4.16): what a
/// member says about itself (alive, leave, metadata) or about another (suspect, dead).
///
/// `bytes` is the exact signature input, a fixed layout an independent implementation can
/// rebuild from the decoded message:
///
///     "hostmesh/gossip-claim/v1"   24 ASCII bytes (domain separation)
///     kind                         1 byte: 1 alive, 2 suspect, 3 dead, 4 leave, 5 metadata
///     member                       u16 big-endian length, UTF-8 bytes (the member the claim is about)
///     then, by kind:
///       alive     incarnation u64 BE, address host (u16 BE length, UTF-8), address port u16 BE
///       suspect   incarnation u64 BE, accuser (u16 BE length, UTF-8)
///       dead      incarnation u64 BE, accuser (u16 BE length, UTF-8)
///       leave     incarnation u64 BE
///       metadata  u32 BE length, the canonical encoding of GossipMemberMetadata without its
///                 `signature` field (fields in number order, defaults omitted)
public enum MembershipClaim: Hashable, Sendable {
    /// `member` is alive at `incarnation` at `address`; signed by `member`.
    case alive(member: MemberID, incarnation: UInt64, address: PeerAddress)
    /// `accuser` suspects `member` at `incarnation`; signed by `accuser`.
    case suspect(member: MemberID, incarnation: UInt64, accuser: MemberID)
    /// `accuser` declares `member` dead at `incarnation`; signed by `accuser`.
    case dead(member: MemberID, incarnation: UInt64, accuser: MemberID)
    /// `member` leaves at `incarnation`; signed by `member`.
    case leave(member: MemberID, incarnation: UInt64)
    /// `member`'s metadata (its `signature` field is ignored); signed by `member`.
    case metadata(member: MemberID, metadata: MemberMetadata)

    /// The domain-separation prefix of every claim.
    public static let context: [UInt8] = Array("hostmesh/gossip-claim/v1".utf8)

    /// Who must have signed the claim.
    public var signer: MemberID {
        switch self {
        case .alive(let member, _, _), .leave(let member, _), .metadata(let member, _): return member
        case .suspect(_, _, let accuser), .dead(_, _, let accuser): return accuser
        }
    }

    /// The member the claim is about.
    public var member: MemberID {
        switch self {
        case .alive(let member, _, _), .leave(let member, _), .metadata(let member, _), .suspect(let member, _, _),
            .dead(let member, _, _):
            return member
        }
    }

    /// The claim's kind, as in `bytes` and as metrics name it.
    public var kind: String {
        switch self {
        case .alive: return "alive"
        case .suspect: return "suspect"
        case .dead: return "dead"
        case .leave: return "leave"
        case .metadata: return "metadata"
        }
    }

    /// The signature input (layout above).
    public var bytes: [UInt8] {
        var out = Self.context
        out.reserveCapacity(96)
        func string(_ value: String) {
            let utf8 = Array(value.utf8.prefix(Int(UInt16.max)))
            integer(UInt16(utf8.count))
            out += utf8
        }
        func integer<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.bigEndian) { out += $0 }
        }
        switch self {
        case .alive(let member, let incarnation, let address):
            out.append(1)
            string(member.hostID)
            integer(incarnation)
            string(address.host)
            integer(address.port)
        case .suspect(let member, let incarnation, let accuser):
            out.append(2)
            string(member.hostID)
            integer(incarnation)
            string(accuser.hostID)
        case .dead(let member, let incarnation, let accuser):
            out.append(3)
            string(member.hostID)
            integer(incarnation)
            string(accuser.hostID)
        case .leave(let member, let incarnation):
            out.append(4)
            string(member.hostID)
            integer(incarnation)
        case .metadata(let member, var metadata):
            out.append(5)
            string(member.hostID)
            metadata.signature = []
            let encoded = GossipCodec.canonicalBytes(of: metadata)
            integer(UInt32(encoded.count))
            out += encoded
        }
        return out
    }
}
