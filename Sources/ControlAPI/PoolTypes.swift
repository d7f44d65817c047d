public import Placement

/// Parameters and results of the resource pool methods (Protocol.md §10.9).
public enum PoolTypes {
    /// `pool.create` and `pool.set`: a field left out takes the default (create) or keeps its
    /// value (set). CPU in thousandths of a core, memory in MiB; a limit of 0 is no limit.
    public struct Change: Codable, Sendable, ControlParameters {
        public var name: String
        public var cpuReservation: Int?
        public var cpuLimit: Int?
        public var cpuShares: Int?
        public var memoryReservation: Int?
        public var memoryLimit: Int?
        public var memoryShares: Int?

        public init(name: String, cpuReservation: Int? = nil, cpuLimit: Int? = nil, cpuShares: Int? = nil,
                    memoryReservation: Int? = nil, memoryLimit: Int? = nil, memoryShares: Int? = nil) {
            self.name = name
            self.cpuReservation = cpuReservation
            self.cpuLimit = cpuLimit
            self.cpuShares = cpuShares
            self.memoryReservation = memoryReservation
            self.memoryLimit = memoryLimit
            self.memoryShares = memoryShares
        }

        public func validate() throws(ControlError) {
            try ControlParameter.nonEmpty("name", name, expected: "a pool name")
            for (field, value) in [("cpuReservation", cpuReservation), ("cpuLimit", cpuLimit), ("memoryReservation", memoryReservation), ("memoryLimit", memoryLimit)] {
                if let value { try ControlParameter.check(field, value, in: 0...(1 << 40)) }
            }
        }

        /// `pool` with this change applied.
        public func applied(to pool: ResourcePool) -> ResourcePool {
            var out = pool
            if let cpuReservation { out.cpu.reservation = cpuReservation }
            if let cpuLimit { out.cpu.limit = cpuLimit == 0 ? nil : cpuLimit }
            if let cpuShares { out.cpu.shares = cpuShares }
            if let memoryReservation { out.memory.reservation = memoryReservation }
            if let memoryLimit { out.memory.limit = memoryLimit == 0 ? nil : memoryLimit }
            if let memoryShares { out.memory.shares = memoryShares }
            return out
        }
    }

    /// `pool.remove`: which pool.
    public struct Remove: Codable, Sendable, ControlParameters {
        public var name: String
        public init(name: String) { self.name = name }
        public func validate() throws(ControlError) { try ControlParameter.nonEmpty("name", name, expected: "a pool name (`hostmesh pool list`)") }
    }

    /// A pool in `pool.list`, with its VMs as this agent sees the mesh.
    public struct Row: Codable, Sendable, Equatable {
        public var pool: ResourcePool
        public var version: UInt64
        public var writer: String
        /// Names of the VMs in it.
        public var vms: [String]
        /// What its VMs reserve together (CPU thousandths of a core, memory MiB).
        public var cpuReserved: Int
        public var memoryReserved: Int

        public init(pool: ResourcePool, version: UInt64, writer: String, vms: [String], cpuReserved: Int, memoryReserved: Int) {
            self.pool = pool
            self.version = version
            self.writer = writer
            self.vms = vms
            self.cpuReserved = cpuReserved
            self.memoryReserved = memoryReserved
        }
    }
}
