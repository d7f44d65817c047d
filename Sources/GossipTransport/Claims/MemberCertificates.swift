public import Membership
import NIOConcurrencyHelpers

/// The checked certificates of the members, by member (Protocol.md §4.16): filled from
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

    struct Table: Sendable {
        var byMember: [MemberID: [Held]] = [:]
        /// Every certificate held, for the "already checked" test of each one received.
        var bytes: Set<[UInt8]> = []
    }

    private let held = NIOLockedValueBox(Table())

    /// An empty cache.
    public init() {}

    /// True when exactly these certificate bytes are held for some member (nothing to check).
    public func contains(_ certificate: [UInt8], of member: MemberID?) -> Bool {
        held.withLockedValue { table in
            guard table.bytes.contains(certificate) else { return false }
            guard let member else { return true }
            return table.byMember[member]?.contains { $0.certificate == certificate } ?? false
        }
    }

    /// Holds a checked certificate of `member` (keeps the two highest serials).
    public func insert(_ certificate: [UInt8], of member: MemberID, key: [UInt8], serial: UInt64) {
        held.withLockedValue { table in
            let previous = table.byMember[member] ?? []
            var list = previous
            list.removeAll { $0.serial == serial || $0.certificate == certificate }
            list.append(Held(certificate: certificate, key: key, serial: serial))
            list.sort { $0.serial > $1.serial }
            list = Array(list.prefix(2))
            for old in previous { table.bytes.remove(old.certificate) }
            for kept in list { table.bytes.insert(kept.certificate) }
            table.byMember[member] = list
        }
    }

    /// Forgets a member's certificates (it was revoked or forgotten).
    public func remove(_ member: MemberID) {
        held.withLockedValue { table in
            for old in table.byMember.removeValue(forKey: member) ?? [] { table.bytes.remove(old.certificate) }
        }
    }

    /// The identity keys held for `member`, newest first; empty when none.
    public func keys(of member: MemberID) -> [[UInt8]] {
        held.withLockedValue { $0.byMember[member]?.map(\.key) ?? [] }
    }

    /// Every certificate held (two per member at most), in member order, for push-pull states:
    /// a member that rotated its key has claims signed with either key in flight.
    public func all() -> [[UInt8]] {
        held.withLockedValue { table in
            table.byMember.keys.sorted().flatMap { table.byMember[$0]?.map(\.certificate) ?? [] }
        }
    }

    /// Members with a certificate held.
    public var count: Int { held.withLockedValue { $0.byMember.count } }
}
