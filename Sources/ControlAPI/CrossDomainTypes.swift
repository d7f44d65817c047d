import Foundation
public import Hypervisor

extension ControlTypes {
    /// `migrate.domain`: live-migrates a VM of this host into a federated domain (Protocol.md
    /// §6.10, §7): asks a host of that domain (`via`) where it may go, then runs the same journaled
    /// handover as inside the domain.
    public struct MigrateAcrossDomains: Codable, Sendable, ControlParameters {
        /// The VM's name or id; it must run on this host.
        public var vm: String
        /// The receiving domain's name (one this domain holds a grant for).
        public var domain: String
        /// Any host of the receiving domain, its channel address `host:port`.
        public var via: String
        /// A host id of the receiving domain; nil: the receiving domain's placement chooses.
        public var to: String?
        /// QEMU migration settings; every field within `MigrationSettings.allowedRanges`.
        public var settings: MigrationSettings
        /// The operator accepts that a mapped network that is not stretched loses the VM at
        /// layer 2 (peers in this domain no longer reach it). Default nil = false: refused.
        public var acceptNetworkChange: Bool?
        /// For a VM with local disks: keep the source's images after the handover. Default nil = false.
        public var keepSourceDisks: Bool?

        /// A request with the fields as named.
        public init(vm: String, domain: String, via: String, to: String? = nil, settings: MigrationSettings,
                    acceptNetworkChange: Bool? = nil, keepSourceDisks: Bool? = nil) {
            self.vm = vm
            self.domain = domain
            self.via = via
            self.to = to
            self.settings = settings
            self.acceptNetworkChange = acceptNetworkChange
            self.keepSourceDisks = keepSourceDisks
        }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("vm", vm)
            try ControlParameter.nonEmpty("domain", domain, expected: "the name of a federated domain")
            do { _ = try HostPort(parsing: via) } catch { throw .badRequest("parameter via: \(error); expected host:port of a host of domain \(domain)") }
            if let to { try ControlParameter.nonEmpty("to", to, expected: "a host id of domain \(domain)") }
            do { try settings.validate() } catch { throw .badRequest("\(error)") }
        }
    }

    /// A VM that left this host for another domain (Protocol.md §6.10): its MACs are not reused
    /// here, and a copy of it older than `epoch` never starts here.
    public struct Tombstone: Codable, Sendable, Equatable {
        /// The VM's id.
        public var vm: String
        /// Its name when it left.
        public var name: String
        /// Its NICs' MACs.
        public var macs: [String]
        /// The domain it went to.
        public var domain: String
        /// The host there, as `host@domain`.
        public var owner: String
        /// The epoch it has there.
        public var epoch: Int64
        /// When it left, unix seconds.
        public var at: Double
        /// An operator removed it (`tombstones.remove`): a removal marker at `epoch`, which no
        /// longer blocks its MACs (its id stays refused by the ownership record, Protocol.md
        /// §6.10.1). The control API lists
        /// standing tombstones only, so this is false there.
        public var removed: Bool

        /// A tombstone with the fields as named.
        public init(vm: String, name: String, macs: [String], domain: String, owner: String, epoch: Int64, at: Double, removed: Bool = false) {
            self.vm = vm
            self.name = name
            self.macs = macs
            self.domain = domain
            self.owner = owner
            self.epoch = epoch
            self.at = at
            self.removed = removed
        }
    }
}
