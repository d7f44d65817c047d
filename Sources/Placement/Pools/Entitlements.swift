/// What each VM is entitled to (Protocol.md §10.9): its demand, raised to its reservation,
/// capped by its limit, and, where its pool's limit is smaller than what the pool's VMs are
/// entitled to together, the pool's limit divided among them by shares (each keeps at least its
/// reservation). Balancing weighs hosts by the entitlements of their VMs, as vSphere DRS does.
/// Pure and deterministic: VMs in id order, the same arithmetic on every agent.
public enum Entitlements {
    /// One resource of one VM: what it demands and its own allocation.
    public struct Claim: Sendable, Hashable {
        public var demand: Int
        public var allocation: ResourceAllocation
        public var shares: Int { allocation.shares }
        public init(demand: Int, allocation: ResourceAllocation) {
            self.demand = demand
            self.allocation = allocation
        }
    }

    /// Entitlements of `claims` (one resource), in the same order. `pools[i]` is claim i's pool
    /// allocation for this resource (nil: no pool, or a pool unknown here).
    public static func compute(_ claims: [Claim], pools: [String?], allocations: [String: ResourceAllocation]) -> [Int] {
        var entitled = claims.map { $0.allocation.bound($0.demand) }
        var members: [String: [Int]] = [:]
        for (i, pool) in pools.enumerated() { if let pool, allocations[pool] != nil { members[pool, default: []].append(i) } }
        for pool in members.keys.sorted() {
            guard let limit = allocations[pool]?.limit else { continue }
            let group = members[pool]!
            guard group.reduce(0, { $0 + entitled[$1] }) > limit else { continue }
            let shared = divide(limit, among: group.map { (cap: entitled[$0], floor: min(claims[$0].allocation.reservation, entitled[$0]), shares: claims[$0].shares) })
            for (k, i) in group.enumerated() { entitled[i] = shared[k] }
        }
        return entitled
    }

    /// Water-filling: each member first gets its `floor`; what is left of `total` goes to the
    /// members below their `cap` in proportion to their shares, a member's part capped at its
    /// `cap` and the excess handed round again, until nothing is left or every member is at its
    /// cap. Results are rounded down (their sum never exceeds `total` unless the floors do).
    static func divide(_ total: Int, among members: [(cap: Int, floor: Int, shares: Int)]) -> [Int] {
        var given = members.map { Double($0.floor) }
        var left = Double(total) - given.reduce(0, +)
        var open = members.indices.filter { given[$0] < Double(members[$0].cap) }
        while left > 0.5, !open.isEmpty {
            let weight = open.reduce(0.0) { $0 + Double(max(1, members[$1].shares)) }
            var handed = 0.0
            var stillOpen: [Int] = []
            for i in open {
                let part = left * Double(max(1, members[i].shares)) / weight
                let room = Double(members[i].cap) - given[i]
                let take = min(part, room)
                given[i] += take
                handed += take
                if take < room { stillOpen.append(i) }
            }
            left -= handed
            if stillOpen.count == open.count { break } // nobody capped: everything was handed out
            open = stillOpen
        }
        return given.map { Int($0.rounded(.down)) }
    }
}
