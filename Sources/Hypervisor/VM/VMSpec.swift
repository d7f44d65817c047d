/// Everything needed to run a VM, independent of the host it runs on: the agent persists this,
/// and source and destination of a migration build identical QEMU command lines from it.
public struct VMSpec: Codable, Sendable, Equatable {
    /// Stable identifier (UUID-like; letters, digits, `-` and `_` only), used in directory names.
    public var id: String
    /// Human name; shown by QEMU in `-name` and in thread names.
    public var name: String
    /// Virtual CPUs, 1...255.
    public var vcpus: Int
    /// Guest RAM in MiB, 16...`maxMemoryMiB`.
    public var memoryMiB: Int
    /// Disks, attached as virtio-blk in this order.
    public var disks: [Disk]
    /// NICs, attached as virtio-net in this order.
    public var nics: [NIC]
    /// How the guest boots.
    public var boot: Boot
    /// Which accelerator to use.
    public var accelerator: Accelerator
    /// Kernel command line arguments appended after `boot.kernel`'s own (workload selection such as
    /// `hm.work=heartbeat`). Ignored for disk boot.
    public var extraKernelArguments: [String]
    /// QEMU machine type. `q35` boots the test guest at least as fast as `pc` under TCG
    /// (Deploy/guest/README.md: 1.48-1.60 s vs 1.48-1.81 s to `ready`).
    public var machine: String
    /// QEMU CPU model. A named model (not `host`/`max`) so that the guest can migrate between
    /// hosts with different CPUs; `qemu64` migrates cleanly under TCG and KVM.
    public var cpuModel: String
    /// What the owner does when the VM's QEMU dies unexpectedly (Protocol.md §9.1); nil takes the
    /// mesh default (the agent's `restart`). Travels with the VM when it migrates; absent from
    /// the JSON when nil, so specs stored before it existed decode unchanged.
    public var restart: RestartPolicy?
    /// Labels a federation grant may name (Protocol.md §2.9: VMs with given labels may cross into
    /// another domain); each 1-63 characters of `a-z 0-9 . _ - : =`, not starting with `.` or `-`.
    /// nil (absent from the JSON) when the VM has none, so specs stored before it decode unchanged.
    public var labels: [String]?
    /// Its pool, reservations, limits and shares, and DRS overrides (Protocol.md §10.9); nil:
    /// none. Travels with the VM; absent from the JSON when nil.
    public var resources: Resources?

    /// A disk image.
    public struct Disk: Codable, Sendable, Equatable {
        /// Image path on the host.
        public var path: String
        /// Image format.
        public var format: Format
        /// True when the same path holds the same image on every host (shared storage); false when
        /// migration must mirror it to the destination.
        public var shared: Bool
        /// Attach read-only.
        public var readOnly: Bool

        /// Image formats QEMU is told about explicitly (never probed: probing raw images is unsafe).
        public enum Format: String, Codable, Sendable { case raw, qcow2 }

        /// A disk; read-write by default.
        public init(path: String, format: Format, shared: Bool, readOnly: Bool = false) {
            self.path = path
            self.format = format
            self.shared = shared
            self.readOnly = readOnly
        }
    }

    /// A virtual NIC with a fixed MAC, plugged into the agent's virtual switch.
    public struct NIC: Codable, Sendable, Equatable {
        /// Identifier, unique in the VM (letters, digits, `-`, `_`; starts with a letter).
        public var id: String
        /// MAC address, `52:54:00:xx:xx:xx` style, kept across migrations.
        public var mac: String
        /// Where the NIC's frames go. The socket paths are host-local: each host sets its own
        /// when it runs the VM (a migration destination rewrites them).
        public var attachment: Attachment
        /// The virtual network the NIC is on (the agent's switch), or nil for none.
        public var network: String?
        /// Addresses the guest may use on that network (CIDR, e.g. "10.77.0.2/32"); enforced by
        /// the switch's anti-spoofing and answered by its proxy ARP.
        public var addresses: [String]
        /// Firewall rules for new connections towards the VM, `PROTO[:PORT[-PORT]][@CIDR]` with
        /// PROTO one of tcp, udp, icmp, icmpv6, any (e.g. "tcp:22@10.0.0.0/8", "udp:9000").
        /// nil allows every connection; [] allows none. Replies to allowed connections, in
        /// either direction, always pass (the switch tracks connections).
        public var ingress: [String]?
        /// Firewall rules for new connections from the VM; same form (the CIDR is the
        /// destination).
        public var egress: [String]?

        /// How a NIC reaches the virtual switch.
        public enum Attachment: Codable, Sendable, Equatable {
            /// `-netdev dgram`: one datagram per frame between the VM's unix socket `localPath`
            /// (QEMU binds it; it must not exist) and the switch's `remotePath`.
            case dgram(localPath: String, remotePath: String)
            /// `-netdev stream`: QEMU connects to the switch's listening unix stream socket.
            case stream(path: String)
            /// Not connected to anything (a NIC with the link present but no traffic).
            case none
        }

        /// A NIC.
        public init(id: String, mac: String, attachment: Attachment, network: String? = nil, addresses: [String] = [],
                    ingress: [String]? = nil, egress: [String]? = nil) {
            self.id = id
            self.mac = mac
            self.attachment = attachment
            self.network = network
            self.addresses = addresses
            self.ingress = ingress
            self.egress = egress
        }

        private enum CodingKeys: String, CodingKey { case id, mac, attachment, network, addresses, ingress, egress }

        /// Decodes, defaulting the fields added after version 1.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            mac = try c.decode(String.self, forKey: .mac)
            attachment = try c.decode(Attachment.self, forKey: .attachment)
            network = try c.decodeIfPresent(String.self, forKey: .network)
            addresses = try c.decodeIfPresent([String].self, forKey: .addresses) ?? []
            ingress = try c.decodeIfPresent([String].self, forKey: .ingress)
            egress = try c.decodeIfPresent([String].self, forKey: .egress)
        }
    }

    /// How the guest boots.
    public enum Boot: Codable, Sendable, Equatable {
        /// Direct kernel boot (`-kernel`, `-initrd`, `-append`): the test guest.
        case kernel(path: String, initrd: String?, commandLine: String)
        /// Firmware boot from the first disk.
        case disk
    }

    /// Most RAM a spec may ask for, MiB (16 TiB): far above any host we run on, and low enough
    /// that the agents' memory arithmetic (reserves, overheads) cannot overflow.
    public static let maxMemoryMiB = 16 << 20

    /// The accelerator the spec asks for.
    public enum Accelerator: String, Codable, Sendable, CaseIterable {
        /// KVM when a bounded probe shows it makes progress, else TCG (see `AcceleratorProbe`).
        case auto
        /// KVM, failing if /dev/kvm is unusable.
        case kvm
        /// TCG (software emulation).
        case tcg

        /// Decodes the raw value, naming the allowed ones when it is none of them.
        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let value = Self(rawValue: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                    "accelerator \"\(text)\" is not one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
            self = value
        }
    }

    /// A spec with sane defaults for everything but identity, size and boot.
    public init(id: String, name: String, vcpus: Int = 1, memoryMiB: Int, disks: [Disk] = [], nics: [NIC] = [],
                boot: Boot, accelerator: Accelerator = .auto, extraKernelArguments: [String] = [],
                machine: String = "q35", cpuModel: String = "qemu64") {
        self.id = id
        self.name = name
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.disks = disks
        self.nics = nics
        self.boot = boot
        self.accelerator = accelerator
        self.extraKernelArguments = extraKernelArguments
        self.machine = machine
        self.cpuModel = cpuModel
    }

    /// Checks what QEMU would otherwise reject late or misread (ids, sizes, MACs).
    public func validate() throws(VMSpecError) {
        guard Self.isIdentifier(id, allowLeadingDigit: true) else { throw .invalidID(id) }
        guard !name.isEmpty else { throw .invalidName(name) }
        guard (1...255).contains(vcpus) else { throw .invalidVCPUs(vcpus) }
        guard (16...Self.maxMemoryMiB).contains(memoryMiB) else { throw .invalidMemory(memoryMiB) }
        var seen = Set<String>()
        for nic in nics {
            guard Self.isIdentifier(nic.id, allowLeadingDigit: false) else { throw .invalidNICID(nic.id) }
            guard seen.insert(nic.id).inserted else { throw .duplicateNICID(nic.id) }
            guard Self.isMAC(nic.mac) else { throw .invalidMAC(nic: nic.id, mac: nic.mac) }
        }
        if case .disk = boot, disks.isEmpty { throw .noBootDisk }
        for label in labels ?? [] where !Self.isLabel(label) { throw .invalidLabel(label) }
    }

    /// A label as federation grants name them (Protocol.md §2.9).
    public static func isLabel(_ text: String) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-:=")
        guard (1...63).contains(text.count), let first = text.first, first != ".", first != "-" else { return false }
        return text.allSatisfy(allowed.contains)
    }

    /// Whether `id` is a VM id `validate()` accepts (1-64 letters, digits, `-`, `_`; a UUID is
    /// one): safe as a file name component, as lease and spec files use it.
    public static func isValidID(_ id: String) -> Bool { isIdentifier(id, allowLeadingDigit: true) }

    static func isIdentifier(_ text: String, allowLeadingDigit: Bool) -> Bool {
        guard let first = text.unicodeScalars.first, text.count <= 64 else { return false }
        if !allowLeadingDigit, !(first.properties.isAlphabetic && first.isASCII) { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else { return false }
        // A multicast MAC (low bit of the first octet) cannot be a NIC's address.
        return UInt8(parts[0], radix: 16)! & 1 == 0
    }
}

/// A `VMSpec` QEMU could not run, with the field and the fix.
public enum VMSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The id has characters other than letters, digits, `-`, `_`, or is empty or too long.
    case invalidID(String)
    /// The name is empty.
    case invalidName(String)
    /// vCPUs outside 1...255.
    case invalidVCPUs(Int)
    /// RAM outside 16 MiB...`VMSpec.maxMemoryMiB`.
    case invalidMemory(Int)
    /// A NIC id QEMU would not accept as a device id.
    case invalidNICID(String)
    /// Two NICs share an id.
    case duplicateNICID(String)
    /// A MAC that is malformed or multicast.
    case invalidMAC(nic: String, mac: String)
    /// Disk boot without a disk.
    case noBootDisk
    /// A path the agent would resolve against its own working directory, not the caller's.
    case relativePath(field: String, path: String)
    /// A NIC option (`ip`, `mac`, `ingress`, `egress`) without a network to plug the NIC into.
    case needsNetwork(field: String)
    /// `none` next to other firewall rules.
    case contradictoryRules(field: String)
    /// An address that is not an IPv4 or IPv6 literal with an optional prefix of fitting length.
    case invalidAddress(String)
    /// A workload that is empty or has whitespace (it would split into more kernel arguments).
    case invalidWorkload(String)
    /// A label a federation grant could not name.
    case invalidLabel(String)

    public var description: String {
        switch self {
        case let .invalidID(id): return "VM id \"\(id)\" is invalid: use 1-64 letters, digits, '-' or '_' (a UUID works)"
        case let .invalidName(name): return "VM name \"\(name)\" is invalid: give the VM a non-empty name"
        case let .invalidVCPUs(count): return "\(count) vCPUs is out of range: use 1 to 255"
        case let .invalidMemory(mib) where mib > VMSpec.maxMemoryMiB:
            return "\(mib) MiB of RAM is too much: give the VM at most \(VMSpec.maxMemoryMiB) MiB (16 TiB)"
        case let .invalidMemory(mib): return "\(mib) MiB of RAM is too little: give the VM at least 16 MiB (128 MiB for the test guest)"
        case let .invalidNICID(id): return "NIC id \"\(id)\" is invalid: start with a letter, then letters, digits, '-' or '_'"
        case let .duplicateNICID(id): return "two NICs are called \"\(id)\": NIC ids must be unique in a VM"
        case let .invalidMAC(nic, mac): return "NIC \(nic) has MAC \"\(mac)\", which is not a unicast xx:xx:xx:xx:xx:xx address: use e.g. 52:54:00:12:34:56"
        case .noBootDisk: return "the VM boots from disk but has none: add a disk or boot a kernel"
        case let .relativePath(field, path): return "\(field) path \"\(path)\" is relative: give an absolute path (the agent does not share the caller's working directory)"
        case let .needsNetwork(field): return "\(field) applies to a NIC: give a network to plug it into (--network)"
        case let .contradictoryRules(field): return "\(field) rules mix `none` with other rules: give either `none` alone (nothing allowed) or the rules"
        case let .invalidAddress(ip): return "\"\(ip)\" is not an IP address with an optional prefix: use e.g. 10.77.0.2/24 or fd00::2/64"
        case let .invalidLabel(label): return "label \"\(label)\" is invalid: use 1-63 characters of a-z 0-9 . _ - : = not starting with '.' or '-'"
        case let .invalidWorkload(work): return "workload \"\(work)\" is empty or has whitespace: give comma-separated workloads, e.g. heartbeat,dirty:50"
        }
    }
}
