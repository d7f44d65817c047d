/// Reservation, limit and shares of one resource (vSphere's resource allocation settings), in
/// the resource's unit: CPU in thousandths of a core, memory in MiB (Protocol.md §10.9).
public struct ResourceAllocation: Codable, Sendable, Hashable {
    /// Guaranteed: admission-controlled, so a host never holds more reservations than capacity.
    public var reservation: Int
    /// At most this, whatever the demand; nil: no limit.
    public var limit: Int?
    /// Weight against siblings when they compete for a limit or a host (vSphere: low 500, normal
    /// 1000, high 2000).
    public var shares: Int

    public static let normalShares = 1000
    /// No reservation, no limit, normal shares.
    public static let unreserved = ResourceAllocation()

    public init(reservation: Int = 0, limit: Int? = nil, shares: Int = normalShares) {
        self.reservation = reservation
        self.limit = limit
        self.shares = shares
    }

    /// `low`, `normal`, `high` or a number 1-1,000,000.
    public static func shares(_ text: String) -> Int? {
        switch text.lowercased() {
        case "low": return 500
        case "normal": return 1000
        case "high": return 2000
        default: return Int(text).flatMap { (1...1_000_000).contains($0) ? $0 : nil }
        }
    }

    /// Refused allocations, naming `what` ("pool web's CPU", "VM a's memory") and the fix.
    public func validate(_ what: String, unit: String) throws(PlacementError) {
        guard reservation >= 0 else { throw .badPool("\(what) reservation \(reservation) \(unit) is negative: give 0 or more") }
        guard (1...1_000_000).contains(shares) else { throw .badPool("\(what) shares \(shares) are out of range: give low, normal, high or 1-1000000") }
        if let limit {
            guard limit > 0 else { throw .badPool("\(what) limit \(limit) \(unit) is not positive: give a positive limit, or none") }
            guard limit >= reservation else {
                throw .badPool("\(what) limit \(limit) \(unit) is below its reservation \(reservation) \(unit): raise the limit or lower the reservation")
            }
        }
    }

    /// `demand` bounded by the reservation below and the limit above (a VM's entitlement before
    /// its pool's limit, Protocol.md §10.9).
    public func bound(_ demand: Int) -> Int {
        let floor = max(demand, reservation)
        return limit.map { min(floor, $0) } ?? floor
    }
}
