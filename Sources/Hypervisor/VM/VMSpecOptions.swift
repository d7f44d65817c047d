import Glibc

/// What a person asks for when defining a VM (the flags of `hostmesh vm create`), before the
/// agent turns it into a `VMSpec` with `spec(id:)`. This is what a `vm.create` request carries
/// (Protocol.md §7), so every client gets the same MAC, address and firewall rules for the same
/// options, and the decisions are tested here rather than in a command.
///
/// Only `name` and `kernel` are required in JSON; every other field has the default stated on it.
public struct VMSpecOptions: Codable, Sendable, Equatable {
    /// VM name: non-empty, unique on the host.
    public var name: String
    /// Guest RAM, MiB: 16...`VMSpec.maxMemoryMiB`. Default 256.
    public var memoryMiB: Int = 256
    /// Virtual CPUs, 1...255. Default 1.
    public var vcpus: Int = 1
    /// Kernel image for direct boot: an absolute path on the agent's host.
    public var kernel: String
    /// Initial ramdisk: an absolute path, or nil for none (the default).
    public var initrd: String?
    /// Kernel command line. Default `console=ttyS0 quiet` (the console log reads ttyS0).
    public var commandLine: String = "console=ttyS0 quiet"
    /// Test-guest workloads, passed as `hm.work=…` (e.g. `heartbeat,dirty:50`); no whitespace.
    /// Default nil: none.
    public var workload: String?
    /// Accelerator. Default `auto`.
    public var accelerator: VMSpec.Accelerator = .auto
    /// Virtual network to plug one NIC (`net0`) into; nil (the default) for no NIC.
    public var network: String?
    /// The NIC's address with its prefix (e.g. `10.77.0.2/24`); needs `network`. The switch is
    /// told the single address (/32, or /128 for IPv6); the test guest is given it with the
    /// prefix as `hm.ip`. Default nil: no address.
    public var ip: String?
    /// The NIC's MAC; nil (the default) derives one from the VM id (`VMSpec.NIC.derivedMAC`).
    public var mac: String?
    /// Rules for new connections towards the VM, `proto[:port[-port]][@cidr]`; needs `network`.
    /// Empty (the default) allows everything; `["none"]` allows nothing; `none` with other rules
    /// is refused as contradictory.
    public var ingress: [String] = []
    /// Rules for new connections from the VM, as `ingress`.
    public var egress: [String] = []
    /// Disk images, absolute paths, attached in order; qcow2 when the path ends in `.qcow2`,
    /// raw otherwise (QEMU is never left to probe). Default none.
    public var disks: [String] = []
    /// The disks are on storage every host mounts at the same path (needed to migrate). Default false.
    public var sharedStorage: Bool = false
    /// What to do when the VM's QEMU dies unexpectedly; nil (the default) takes the mesh default.
    public var restart: VMSpec.RestartPolicy?
    /// Labels federation grants may name (`--label`, Protocol.md §2.9). Default none.
    public var labels: [String] = []
    /// Its resources and DRS overrides (Protocol.md §10.9); nil (the default): no pool, nothing
    /// reserved, no limit, normal shares, the mesh's DRS settings.
    public var resources: VMSpec.Resources?

    /// Options with the defaults stated on each field.
    public init(name: String, kernel: String) {
        self.name = name
        self.kernel = kernel
    }

    private enum CodingKeys: String, CodingKey {
        case name, memoryMiB, vcpus, kernel, initrd, commandLine, workload, accelerator, network, ip, mac, ingress, egress, disks, sharedStorage, restart, labels, resources
    }

    /// Decodes, taking the default for every absent field but `name` and `kernel`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), kernel: try c.decode(String.self, forKey: .kernel))
        memoryMiB = try c.decodeIfPresent(Int.self, forKey: .memoryMiB) ?? memoryMiB
        vcpus = try c.decodeIfPresent(Int.self, forKey: .vcpus) ?? vcpus
        initrd = try c.decodeIfPresent(String.self, forKey: .initrd)
        commandLine = try c.decodeIfPresent(String.self, forKey: .commandLine) ?? commandLine
        workload = try c.decodeIfPresent(String.self, forKey: .workload)
        accelerator = try c.decodeIfPresent(VMSpec.Accelerator.self, forKey: .accelerator) ?? accelerator
        network = try c.decodeIfPresent(String.self, forKey: .network)
        ip = try c.decodeIfPresent(String.self, forKey: .ip)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
        ingress = try c.decodeIfPresent([String].self, forKey: .ingress) ?? []
        egress = try c.decodeIfPresent([String].self, forKey: .egress) ?? []
        disks = try c.decodeIfPresent([String].self, forKey: .disks) ?? []
        sharedStorage = try c.decodeIfPresent(Bool.self, forKey: .sharedStorage) ?? false
        restart = try c.decodeIfPresent(VMSpec.RestartPolicy.self, forKey: .restart)
        labels = try c.decodeIfPresent([String].self, forKey: .labels) ?? []
        resources = try c.decodeIfPresent(VMSpec.Resources.self, forKey: .resources)
    }

    /// The spec for a VM with id `id`, checked with `VMSpec.validate()`.
    public func spec(id: String) throws(VMSpecError) -> VMSpec {
        let paths: [(field: String, path: String?)] = [("kernel", kernel), ("initrd", initrd)] + disks.map { ("disk", $0) }
        for (field, path) in paths {
            // The agent's working directory is not the caller's: a relative path would name another file.
            if let path, !path.hasPrefix("/") { throw .relativePath(field: field, path: path) }
        }
        if let workload, workload.isEmpty || workload.contains(where: \.isWhitespace) { throw .invalidWorkload(workload) }
        var arguments = workload.map { ["hm.work=\($0)"] } ?? []
        var nics: [VMSpec.NIC] = []
        if let network {
            var addresses: [String] = []
            if let ip {
                addresses = [try Self.singleAddress(ip)]
                arguments.append("hm.ip=\(ip)")
            }
            nics.append(VMSpec.NIC(id: "net0", mac: mac ?? VMSpec.NIC.derivedMAC(vmID: id), attachment: .none, network: network,
                                   addresses: addresses, ingress: try Self.rules(ingress, "ingress"), egress: try Self.rules(egress, "egress")))
        } else {
            for (field, given) in [("ip", ip != nil), ("mac", mac != nil), ("ingress", !ingress.isEmpty), ("egress", !egress.isEmpty)] where given {
                throw .needsNetwork(field: field)
            }
        }
        var spec = VMSpec(id: id, name: name, vcpus: vcpus, memoryMiB: memoryMiB,
                          disks: disks.map { VMSpec.Disk(path: $0, format: $0.hasSuffix(".qcow2") ? .qcow2 : .raw, shared: sharedStorage) },
                          nics: nics, boot: .kernel(path: kernel, initrd: initrd, commandLine: commandLine),
                          accelerator: accelerator, extraKernelArguments: arguments)
        spec.restart = restart
        spec.labels = labels.isEmpty ? nil : labels
        spec.resources = resources
        try spec.validate()
        return spec
    }

    /// Firewall rules as the spec stores them: nil (no rule given: everything allowed), [] for
    /// `none` (nothing new allowed), else the rules. The switch parses the rules themselves.
    static func rules(_ given: [String], _ field: String) throws(VMSpecError) -> [String]? {
        if given.isEmpty { return nil }
        if given.contains("none") {
            guard given.allSatisfy({ $0 == "none" }) else { throw .contradictoryRules(field: field) }
            return []
        }
        return given
    }

    /// `ip` (with or without a prefix) as the one address the NIC may use: `/32`, or `/128` for IPv6.
    static func singleAddress(_ ip: String) throws(VMSpecError) -> String {
        let parts = ip.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let host = String(parts[0])
        var v4 = in_addr(), v6 = in6_addr()
        let bits: Int
        if inet_pton(AF_INET, host, &v4) == 1 { bits = 32 } else if inet_pton(AF_INET6, host, &v6) == 1 { bits = 128 } else {
            throw .invalidAddress(ip)
        }
        if parts.count == 2 {
            guard let prefix = Int(parts[1]), (0...bits).contains(prefix) else { throw .invalidAddress(ip) }
        }
        return "\(host)/\(bits)"
    }
}

extension VMSpec.NIC {
    /// The MAC a NIC gets when none is given: QEMU's locally administered prefix `52:54:00`
    /// and the first six hex digits of the VM id (so the MAC is stable for the VM's life and
    /// `vm list`'s id prefix shows it). An id with fewer hex digits uses a hash of the id.
    public static func derivedMAC(vmID id: String) -> String {
        var hex = Array(id.lowercased().filter(\.isHexDigit).prefix(6))
        if hex.count < 6 {
            // FNV-1a: any id still maps to a fixed MAC.
            var hash: UInt32 = 2_166_136_261
            for byte in id.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            hex = Array(String(hash & 0xFF_FFFF | 0x100_0000, radix: 16).dropFirst())
        }
        return "52:54:00:" + stride(from: 0, to: 6, by: 2).map { String(hex[$0..<($0 + 2)]) }.joined(separator: ":")
    }
}
