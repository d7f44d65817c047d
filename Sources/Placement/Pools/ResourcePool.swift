/// A resource pool (vSphere's resource pool, flat: no nesting): a named group of VMs across the
/// mesh with CPU and memory reservations, limits and shares (Protocol.md §10.9). Replicated to
/// every agent as a record `pool/<name>`.
public struct ResourcePool: Codable, Sendable, Hashable {
    public var name: String
    /// Thousandths of a core, for all the pool's VMs together.
    public var cpu: ResourceAllocation
    /// MiB, for all the pool's VMs together.
    public var memory: ResourceAllocation

    public init(name: String, cpu: ResourceAllocation = .unreserved, memory: ResourceAllocation = .unreserved) {
        self.name = name
        self.cpu = cpu
        self.memory = memory
    }

    /// Whether `name` is a pool name: 1-64 of letters, digits, '-', '_', '.' (it is a key suffix
    /// and a cgroup directory name).
    public static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    /// A pool that cannot mean anything: refused when written, with the reason.
    public func validate() throws(PlacementError) {
        guard Self.isName(name) else { throw .badPool("pool name \"\(name)\" must be 1-64 letters, digits, '-', '_' or '.'") }
        try cpu.validate("pool \(name)'s CPU", unit: "thousandths of a core")
        try memory.validate("pool \(name)'s memory", unit: "MiB")
    }
}
