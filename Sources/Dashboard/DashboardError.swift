/// What can keep the dashboard from starting, with the cause and the fix.
public enum DashboardError: Error, CustomStringConvertible, Equatable {
    /// The token file is missing, too open or malformed.
    case token(path: String, reason: String)
    /// The listen address cannot be bound.
    case bind(address: String, reason: String)

    public var description: String {
        switch self {
        case let .token(path, reason):
            return "dashboard token \(path) cannot be used: \(reason)"
        case let .bind(address, reason):
            return "the dashboard cannot listen on \(address): \(reason); choose another dashboard_listen"
        }
    }
}
