/// What can be wrong with gossip keys, the keyring and its file; each case says how to fix it.
public enum GossipKeyringError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A key is not 32 bytes long.
    case invalidKeyLength(Int)
    /// Two different keys derive the same key id (astronomically unlikely unless forced).
    case keyIDCollision(GossipKeyID)
    /// The key id is not in the keyring.
    case unknownKey(GossipKeyID)
    /// The primary key seals every outgoing datagram and cannot be removed.
    case cannotRemovePrimary(GossipKeyID)
    /// A keyring file line could not be read.
    case fileMalformed(line: Int, reason: String)
    /// A keyring file names no primary key.
    case noPrimaryKey
    /// A keyring file names more than one primary key.
    case multiplePrimaryKeys

    /// A sentence a person can act on.
    public var description: String {
        switch self {
        case .invalidKeyLength(let length):
            return "a gossip key must be 32 bytes (64 hex digits in the key file), this one has \(length); generate a new key"
        case .keyIDCollision(let id):
            return "two different gossip keys have the same key id \(id); generate a new key instead of this one"
        case .unknownKey(let id):
            return "gossip key \(id) is not in the keyring; install it first (list the keyring to see the ids)"
        case .cannotRemovePrimary(let id):
            return "gossip key \(id) is the primary key and cannot be removed; make another key primary first"
        case .fileMalformed(let line, let reason):
            return "gossip keyring file, line \(line): \(reason); each line is `primary <64 hex digits>` or `key <64 hex digits>`"
        case .noPrimaryKey:
            return "the gossip keyring file names no primary key; mark exactly one line `primary`"
        case .multiplePrimaryKeys:
            return "the gossip keyring file names more than one primary key; mark exactly one line `primary`"
        }
    }
}
