/// Why placement refuses: a rule, a setting or a request that cannot be met, with the reason.
public enum PlacementError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A rule that cannot mean anything (too few VMs, no hosts, a bad name).
    case badRule(String)
    /// Two rules that cannot both hold.
    case conflict(String)
    /// A setting out of range.
    case badSetting(String)
    /// A resource pool or VM allocation that cannot mean anything (a limit below the
    /// reservation, a reservation larger than any host, an unknown pool).
    case badPool(String)
    /// No host can take the VM: each candidate with why not.
    case noHost(vm: String, reasons: [String])

    public var description: String {
        switch self {
        case .badRule(let text), .conflict(let text), .badSetting(let text), .badPool(let text): return text
        case .noHost(let vm, let reasons):
            return reasons.isEmpty ? "no host can take \(vm): the mesh has no other host"
                : "no host can take \(vm) (\(reasons.joined(separator: "; ")))"
        }
    }
}
