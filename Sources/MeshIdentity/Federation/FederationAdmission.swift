public import MeshCrypto

/// Whether a grant lets one VM cross the boundary (Protocol.md §2.9, "Admission"): pure, no
/// clock, each refusal naming the cause and the fix. The side that checks holds its own grant
/// for the other domain: the source before it asks, the destination before it admits.
public enum FederationAdmission {
    /// Which way the VM moves, seen from the grant's domain.
    public enum Direction: String, Sendable, Equatable {
        /// Into the grant's domain: the VM's networks are named as in the peer domain.
        case incoming
        /// Out of the grant's domain: the VM's networks are named as in the grant's domain.
        case outgoing
    }

    /// The VM asking to cross.
    public struct Candidate: Sendable, Equatable {
        /// Its name, for messages.
        public var name: String
        /// Its labels.
        public var labels: Set<String>
        /// The networks its NICs attach to, named as on the side it is on now.
        public var networks: [String]
        /// How many of its disks are local (not on storage both sides see).
        public var localDisks: Int
        /// The operator accepts that a mapped network that is not stretched loses the VM at layer
        /// 2 (`migrate --accept-network-change`); checked on the way out only.
        public var acceptNetworkChange: Bool

        public init(name: String, labels: Set<String> = [], networks: [String] = [], localDisks: Int = 0, acceptNetworkChange: Bool = false) {
            self.name = name
            self.labels = labels
            self.networks = networks
            self.localDisks = localDisks
            self.acceptNetworkChange = acceptNetworkChange
        }
    }

    /// Why a VM may not cross.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// No grant of this domain names the peer domain.
        case noGrant(domain: String, peer: String)
        /// The grant is revoked, expired or not yet valid.
        case notInForce(String)
        /// The peer's certificate is vouched for by another key than the grant names.
        case wrongDomainKey(peer: String, granted: String, presented: String)
        /// None of the VM's labels is one the grant allows.
        case labelNotCovered(vm: String, labels: [String], allowed: [String])
        /// A NIC's network has no mapping in the grant.
        case networkUnmapped(vm: String, network: String, direction: Direction)
        /// The VM is on stretched and on not-stretched networks at once: its port state would have
        /// to move for some NICs and not for others (not supported in this version).
        case mixedStretch(vm: String, stretched: [String], notStretched: [String])
        /// The VM has local disks and the receiving grant names no storage directory for them.
        case noStorageDirectory(vm: String, count: Int)
        /// The VM's networks are mapped but not stretched, and the operator did not accept that
        /// its peers here lose it at layer 2.
        case networkChangeNotAccepted(vm: String, networks: [String])

        public var description: String {
            switch self {
            case let .noGrant(domain, peer):
                return "domain \(domain) holds no federation grant for domain \(peer): have \(domain) federate it with `hostmesh domain federate --peer-key \(peer).pub ...` (both domains must grant)"
            case let .notInForce(reason):
                return reason
            case let .wrongDomainKey(peer, granted, presented):
                return "the grant for domain \(peer) names its key \(granted), but the peer's certificate is vouched for by key \(presented): federate again with the key of the domain you mean"
            case let .labelNotCovered(vm, labels, allowed):
                return "VM \(vm) (labels: \(labels.isEmpty ? "none" : labels.joined(separator: ", "))) carries none of the labels the grant allows (\(allowed.joined(separator: ", "))): label the VM or widen the grant"
            case let .networkUnmapped(vm, network, direction):
                let side = direction == .incoming ? "their" : "our"
                return "VM \(vm) has a NIC on network \"\(network)\", which the grant does not map (\(side) side): add --network to the grant, or detach the NIC"
            case let .mixedStretch(vm, stretched, notStretched):
                return "VM \(vm) is on stretched network(s) \(stretched.joined(separator: ", ")) and on network(s) \(notStretched.joined(separator: ", ")) that are not stretched: a VM crosses with all its networks stretched or none; map them alike in the grant, or detach a NIC"
            case let .noStorageDirectory(vm, count):
                return "VM \(vm) has \(count) local disk(s), and the receiving domain's grant names no storage directory for incoming disks: federate again with --storage-dir DIR"
            case let .networkChangeNotAccepted(vm, networks):
                return "VM \(vm) is on network(s) \(networks.joined(separator: ", ")), mapped to the other domain but not stretched: its peers here will lose it at layer 2 (its MAC and addresses are kept, but no frame crosses the boundary). Migrate with --accept-network-change if that is what you want"
            }
        }
    }

    /// Checks `candidate` against `grant` (held by this side, verified) for a peer whose
    /// certificate is vouched for by `peerKey`, at unix time `now`. Returns the VM's networks as
    /// named on the other side, in NIC order.
    public static func check(_ candidate: Candidate, grant: FederationGrant?, domain: String, peer: String, peerKey: SigningPublicKey,
                             direction: Direction, now: Int64, skew: Int64 = 60) throws(Refusal) -> [String] {
        guard let grant, grant.domain == domain, grant.peerDomain == peer else { throw .noGrant(domain: domain, peer: peer) }
        if let reason = grant.refusal(at: now, skew: skew) { throw .notInForce(reason) }
        guard grant.peerDomainKey == peerKey else {
            throw .wrongDomainKey(peer: peer, granted: grant.peerDomainKey.fingerprint, presented: peerKey.fingerprint)
        }
        if !grant.body.allVms, candidate.labels.isDisjoint(with: grant.body.vmLabels) {
            throw .labelNotCovered(vm: candidate.name, labels: candidate.labels.sorted(), allowed: grant.body.vmLabels)
        }
        var mapped: [String] = []
        var stretched: [String] = [], notStretched: [String] = []
        for network in candidate.networks {
            let mapping = grant.body.networks.first { direction == .incoming ? $0.peerNetwork == network : $0.localNetwork == network }
            guard let mapping else { throw .networkUnmapped(vm: candidate.name, network: network, direction: direction) }
            if mapping.stretched { stretched.append(network) } else { notStretched.append(network) }
            mapped.append(direction == .incoming ? mapping.localNetwork : mapping.peerNetwork)
        }
        if !stretched.isEmpty, !notStretched.isEmpty {
            throw .mixedStretch(vm: candidate.name, stretched: stretched, notStretched: notStretched)
        }
        // A stretched network keeps the VM's peers (the switches carry the segment, §8.9).
        if direction == .outgoing, !notStretched.isEmpty, !candidate.acceptNetworkChange {
            throw .networkChangeNotAccepted(vm: candidate.name, networks: candidate.networks)
        }
        if direction == .incoming, candidate.localDisks > 0, grant.body.storageDirectory.isEmpty {
            throw .noStorageDirectory(vm: candidate.name, count: candidate.localDisks)
        }
        return mapped
    }

    /// True when the VM has networks and `grant` maps every one of them as stretched (named as on
    /// the side `direction` says): its ports move with it across the boundary (§8.9).
    public static func isStretched(_ networks: [String], grant: FederationGrant?, direction: Direction) -> Bool {
        guard let grant, !networks.isEmpty else { return false }
        return networks.allSatisfy { network in
            grant.body.networks.contains { (direction == .incoming ? $0.peerNetwork : $0.localNetwork) == network && $0.stretched }
        }
    }
}
