public import Hypervisor

/// Parameters and results of the control API methods (Protocol.md §7.2).
public enum ControlTypes {
    /// `vm.create`.
    public struct CreateVM: Codable, Sendable {
        /// The VM.
        public var spec: VMSpec
        /// Start it right away.
        public var start: Bool
        /// A request.
        public init(spec: VMSpec, start: Bool) {
            self.spec = spec
            self.start = start
        }
    }

    /// `vm.start`, `vm.stop`, `vm.show`: which VM (name or id).
    public struct VMReference: Codable, Sendable {
        /// Name or id.
        public var vm: String
        /// A reference.
        public init(vm: String) { self.vm = vm }
    }

    /// `vm.console`.
    public struct Console: Codable, Sendable {
        /// Name or id.
        public var vm: String
        /// How many lines from the end.
        public var lines: Int
        /// A request.
        public init(vm: String, lines: Int) {
            self.vm = vm
            self.lines = lines
        }
    }

    /// `vm.console` result.
    public struct Text: Codable, Sendable {
        /// The text.
        public var text: String
        /// A text.
        public init(text: String) { self.text = text }
    }

    /// `migrate`.
    public struct Migrate: Codable, Sendable {
        /// Name or id.
        public var vm: String
        /// The destination agent's channel address, host:port.
        public var to: String
        /// QEMU migration settings.
        public var settings: MigrationSettings
        /// A request.
        public init(vm: String, to: String, settings: MigrationSettings) {
            self.vm = vm
            self.to = to
            self.settings = settings
        }
    }

    /// `status`.
    public struct Status: Codable, Sendable {
        /// This host.
        public var hostID: String
        /// Its domain.
        public var domain: String
        /// Secure channel address.
        public var listen: String
        /// Software version.
        public var software: String
        /// VMs defined here.
        public var vms: Int
    }

    /// `vm.resolve`.
    public struct Resolve: Codable, Sendable {
        /// Name or id.
        public var vm: String
        /// nil (show), "retry", "resume-here" or "release-here".
        public var action: String?
        /// A request.
        public init(vm: String, action: String?) {
            self.vm = vm
            self.action = action
        }
    }

    /// `join`: a member's channel address.
    public struct Join: Codable, Sendable {
        /// host:port.
        public var address: String
        /// A request.
        public init(address: String) { self.address = address }
    }

    /// `ownership`: one record.
    public struct Ownership: Codable, Sendable, Equatable {
        /// VM id.
        public var vm: String
        /// Owning host.
        public var owner: String
        /// Ownership epoch.
        public var epoch: UInt64
        /// A record.
        public init(vm: String, owner: String, epoch: UInt64) {
            self.vm = vm
            self.owner = owner
            self.epoch = epoch
        }
    }
}
