/// Why a migration operation could not be done, with what to do about it.
public enum MigrationServiceError: Error, Sendable, CustomStringConvertible {
    /// Neither the peer's current nor its journaled address is known.
    case peerUnknown(String)
    /// The journal (the agent's store) could not be read or written.
    case journal(String)
    /// A peer's migration message does not make sense (what is wrong with it).
    case malformed(String)

    public var description: String {
        switch self {
        case .peerUnknown(let peer):
            return "no address is known for \(peer): it is not a member now and the journal has none (check `hostmesh members`)"
        case .journal(let why):
            return "the migration journal cannot be used (\(why)): check the state directory's disk and permissions"
        case .malformed(let why):
            return why
        }
    }
}
