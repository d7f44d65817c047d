extension VMSpec {
    /// A VM's resource settings (Protocol.md §10.9): its pool, its own CPU and memory
    /// reservation, limit and shares, and its own DRS automation level and threshold. Travels with
    /// the VM when it migrates; nil (absent from the JSON) is no pool, nothing reserved, no limit,
    /// normal shares, the mesh's DRS settings.
    public struct Resources: Codable, Sendable, Equatable {
        /// Its resource pool's name (nil: none).
        public var pool: String?
        /// Thousandths of a core.
        public var cpu: Allocation
        /// MiB.
        public var memory: Allocation
        /// Its own DRS automation level, `manual`, `partial` or `full` (nil: the mesh's).
        public var automation: String?
        /// Its own migration threshold 1-5 (nil: the mesh's).
        public var threshold: Int?

        public init(pool: String? = nil, cpu: Allocation = Allocation(), memory: Allocation = Allocation(), automation: String? = nil, threshold: Int? = nil) {
            self.pool = pool
            self.cpu = cpu
            self.memory = memory
            self.automation = automation
            self.threshold = threshold
        }

        private enum CodingKeys: String, CodingKey { case pool, cpu, memory, automation, threshold }

        /// Decodes, every field optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pool = try c.decodeIfPresent(String.self, forKey: .pool)
            cpu = try c.decodeIfPresent(Allocation.self, forKey: .cpu) ?? Allocation()
            memory = try c.decodeIfPresent(Allocation.self, forKey: .memory) ?? Allocation()
            automation = try c.decodeIfPresent(String.self, forKey: .automation)
            threshold = try c.decodeIfPresent(Int.self, forKey: .threshold)
        }
    }

    /// Reservation, limit and shares of one resource, in its unit.
    public struct Allocation: Codable, Sendable, Equatable {
        public var reservation: Int
        /// nil: no limit.
        public var limit: Int?
        /// 1000 is normal (vSphere's low 500, high 2000).
        public var shares: Int

        public init(reservation: Int = 0, limit: Int? = nil, shares: Int = 1000) {
            self.reservation = reservation
            self.limit = limit
            self.shares = shares
        }

        private enum CodingKeys: String, CodingKey { case reservation, limit, shares }

        /// Decodes, every field optional.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            reservation = try c.decodeIfPresent(Int.self, forKey: .reservation) ?? 0
            limit = try c.decodeIfPresent(Int.self, forKey: .limit)
            shares = try c.decodeIfPresent(Int.self, forKey: .shares) ?? 1000
        }

        /// Whether it changes nothing on the host (no limit, normal shares).
        public var isDefault: Bool { limit == nil && shares == 1000 }
    }
}
