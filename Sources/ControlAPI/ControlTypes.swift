public import Hypervisor

/// Parameters and results of the control API methods (Protocol.md §7). Each parameter type
/// checks its own values (`ControlParameters.validate()`), so the agent answers `bad_request`
/// naming the parameter and its range before acting on an absurd value.
public enum ControlTypes {
    /// `vm.create`: exactly one of `options` (what the person asked for; the agent builds the
    /// spec) and `spec` (a complete spec, for clients that build their own).
    public struct CreateVM: Codable, Sendable, ControlParameters {
        /// The options of `hostmesh vm create`; the agent picks the id and derives the rest.
        public var options: VMSpecOptions?
        /// A complete spec, taken as is after `VMSpec.validate()` (its id must be unused here).
        public var spec: VMSpec?
        /// Start the VM once defined. Default false.
        public var start: Bool

        /// A request that lets the agent build the spec from `options`.
        public init(options: VMSpecOptions, start: Bool) {
            self.options = options
            self.start = start
        }

        /// A request carrying a complete spec.
        public init(spec: VMSpec, start: Bool) {
            self.spec = spec
            self.start = start
        }

        private enum CodingKeys: String, CodingKey { case options, spec, start }

        /// Decodes; `start` defaults to false.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            options = try c.decodeIfPresent(VMSpecOptions.self, forKey: .options)
            spec = try c.decodeIfPresent(VMSpec.self, forKey: .spec)
            start = try c.decodeIfPresent(Bool.self, forKey: .start) ?? false
        }

        public func validate() throws(ControlError) {
            guard (options == nil) != (spec == nil) else {
                throw .badRequest("vm.create takes exactly one of \"options\" (the agent builds the spec) and \"spec\"")
            }
        }
    }

    /// `vm.start`, `vm.stop`, `vm.show`: which VM.
    public struct VMReference: Codable, Sendable, ControlParameters {
        /// The VM's name or id (a unique prefix of the id is not enough).
        public var vm: String
        /// A reference to the VM named or numbered `vm`.
        public init(vm: String) { self.vm = vm }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("vm", vm)
        }
    }

    /// `vm.console`: the end of a VM's serial console log.
    public struct Console: Codable, Sendable, ControlParameters {
        /// Most lines `lines` may ask for: more than a console log holds in practice, and the
        /// whole answer must fit a control line (1 MiB).
        public static let maxLines = 100_000

        /// The VM's name or id.
        public var vm: String
        /// How many lines from the end, 1...`maxLines`.
        public var lines: Int
        /// The last `lines` lines of `vm`'s console.
        public init(vm: String, lines: Int) {
            self.vm = vm
            self.lines = lines
        }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("vm", vm)
            try ControlParameter.check("lines", lines, in: 1...Self.maxLines)
        }
    }

    /// The result of `vm.console`, `join`, `leave` and `vm.resolve`: text for a person.
    public struct Text: Codable, Sendable {
        /// The text, lines separated by `\n`, no trailing newline.
        public var text: String
        /// A result reading `text`.
        public init(text: String) { self.text = text }
    }

    /// The result of `switch.counters`: the virtual switch's switch-wide and overlay counters by
    /// name (they never decrease while the agent runs; a benchmark takes differences).
    public struct SwitchCounters: Codable, Sendable {
        /// Counter name to count, e.g. `held-frames-forwarded`, `port-drops.guest-busy`.
        public var counters: [String: UInt64]
        /// A result with these counters.
        public init(counters: [String: UInt64]) { self.counters = counters }
    }

    /// `migrate`.
    public struct Migrate: Codable, Sendable, ControlParameters {
        /// The VM's name or id; it must run on this host.
        public var vm: String
        /// Where to: chosen by the agent, a member, or a channel address.
        public var to: MigrationDestination
        /// QEMU migration settings; every field within `MigrationSettings.allowedRanges`.
        public var settings: MigrationSettings
        /// For a VM with local disks: keep the source's images after the handover commits
        /// (default nil = false: they are deleted once the destination runs the guest).
        public var keepSourceDisks: Bool?
        /// Refuse rather than wait when this host already runs its limit of outgoing migrations
        /// or the destination answers busy (default nil = false: wait in the queue, in order).
        public var noQueue: Bool?
        /// Migrate `vm` to `to` with `settings`.
        public init(vm: String, to: MigrationDestination, settings: MigrationSettings, keepSourceDisks: Bool? = nil, noQueue: Bool? = nil) {
            self.vm = vm
            self.to = to
            self.settings = settings
            self.keepSourceDisks = keepSourceDisks
            self.noQueue = noQueue
        }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("vm", vm)
            switch to {
            case .auto: break
            case .host(let id): try ControlParameter.nonEmpty("to", id, expected: "\"auto\", a member's host id or host:port")
            case .address(let address): try ControlParameter.check("to (port)", address.port, in: 1...65535)
            }
            do { try settings.validate() } catch { throw .badRequest("\(error)") }
        }
    }

    /// The result of `status`.
    public struct Status: Codable, Sendable {
        /// This host's id.
        public var hostID: String
        /// The domain that certified it.
        public var domain: String
        /// Bound secure-channel address, host:port (the real port when configured with 0).
        public var listen: String
        /// Software version, e.g. "hostmesh 0.1.0".
        public var software: String
        /// VMs defined here, in any state.
        public var vms: Int

        /// The fields as named.
        public init(hostID: String, domain: String, listen: String, software: String, vms: Int) {
            self.hostID = hostID
            self.domain = domain
            self.listen = listen
            self.software = software
            self.vms = vms
        }
    }

    /// `vm.resolve`: show or settle a handover in doubt (Protocol.md §6.5).
    public struct Resolve: Codable, Sendable, ControlParameters {
        /// What to do; on the wire the raw value, and no `action` at all to show the choices.
        public enum Action: String, Codable, Sendable, CaseIterable {
            /// Ask the destination again.
            case retry
            /// Resume the guest here: the operator confirmed the destination is fenced.
            case resumeHere = "resume-here"
            /// Release the guest to the destination: the operator saw it run there.
            case releaseHere = "release-here"

            /// Decodes the raw value, naming the allowed ones when it is none of them.
            public init(from decoder: any Decoder) throws {
                let text = try decoder.singleValueContainer().decode(String.self)
                guard let action = Self(rawValue: text) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                        "\"\(text)\" is not one of \(Self.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")) (leave it out to show the choices)"))
                }
                self = action
            }
        }

        /// The VM's name or id.
        public var vm: String
        /// nil shows the state and the safe choices.
        public var action: Action?
        /// Required true with `resume-here`: the operator confirms that the destination host is
        /// down and cannot come back with the VM. The agent refuses `resume-here` without it.
        public var destinationFenced: Bool?
        /// Required true with `release-here`: the operator confirms the guest was seen running on
        /// the destination. The agent refuses `release-here` without it.
        public var destinationRunsIt: Bool?
        /// Do `action` (or show the choices) for `vm`; the confirmations default to absent.
        public init(vm: String, action: Action?, destinationFenced: Bool? = nil, destinationRunsIt: Bool? = nil) {
            self.vm = vm
            self.action = action
            self.destinationFenced = destinationFenced
            self.destinationRunsIt = destinationRunsIt
        }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("vm", vm)
        }
    }

    /// `join`: a member to join the mesh through.
    public struct Join: Codable, Sendable, ControlParameters {
        /// The member's secure-channel address, host:port with a port 1-65535.
        public var address: String
        /// Join through the member at `address`.
        public init(address: String) { self.address = address }

        public func validate() throws(ControlError) {
            let parsed: HostPort
            do { parsed = try HostPort(parsing: address) } catch { throw .badRequest("parameter address: \(error)") }
            try ControlParameter.check("address (port)", parsed.port, in: 1...65535)
        }
    }

    /// One record of the `ownership` result (Protocol.md §6.6).
    public struct Ownership: Codable, Sendable, Equatable {
        /// VM id.
        public var vm: String
        /// Host id of the owner.
        public var owner: String
        /// Ownership epoch: advances by one at every completed handover.
        public var epoch: UInt64
        /// The fields as named.
        public init(vm: String, owner: String, epoch: UInt64) {
            self.vm = vm
            self.owner = owner
            self.epoch = epoch
        }
    }
}
