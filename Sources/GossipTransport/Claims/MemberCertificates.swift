public import Membership
import NIOConcurrencyHelpers

/// The checked certificates of the members, by member (Protocol.md §4.17): filled from
/// push-pull states (and this host's own), read by `CertifiedClaimAuthority` to verify claims.
/// Two per member at most, the highest serials: during a key rotation a member's claims signed
/// with its previous key (rebroadcast by others) still verify while its new certificate spreads.
///
/// Written and read on the membership service's event loop; the lock makes it safe anywhere.
public final class MemberCertificates: Sendable {
    struct Held: Sendable {
        var certificate: [UInt8]
        var key: [UInt8]
        var serial: UInt64
    }

    private let held = NIOLockedValueBox<[MemberID: [Held]]>([:])

    /// An empty cache.
    public init() {}

    /// True when exactly these certificate bytes are held for some member (nothing to check).
    public func contains(_ certificate: [UInt8], of member: MemberID?) -> Bool {
        held.withLockedValue { table in
            if let member { return table[member]?.contains { $0.certificate == certificate } ?? false }
            return table.values.contains { $0.contains { $0.certificate == certificate } }
        }
    }

    /// Holds a checked certificate of `member` (keeps the two highest serials).
    public func insert(_ certificate: [UInt8], of member: MemberID, key: [UInt8], serial: UInt64) {
        held.withLockedValue { table in
            var list = table[member, default: []]
            list.removeAll { $0.serial == serial || $0.certificate == certificate }
            list.append(Held(certificate: certificate, key: key, serial: serial))
            list.sort { $0.serial > $1.serial }
            table[member] = Array(list.prefix(2))
        }
    }

    /// Forgets a member's certificates (it was revoked or forgotten).
    public func remove(_ member: MemberID) {
        _ = held.withLockedValue { $0.removeValue(forKey: member) }
    }

    /// The identity keys held for `member`, newest first; empty when none.
    public func keys(of member: MemberID) -> [[UInt8]] {
        held.withLockedValue { $0[member]?.map(\.key) ?? [] }
    }

    /// The newest certificate of every member held, in member order (for push-pull states).
    public func newest() -> [[UInt8]] {
        held.withLockedValue { table in
            table.keys.sorted().compactMap { table[$0]?.first?.certificate }
        }
    }

    /// Members with a certificate held.
    public var count: Int { held.withLockedValue { $0.count } }
}
