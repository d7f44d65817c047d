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
    /// A keyring record names a key whose secret this host neither holds nor was handed.
    case missingSecret(GossipKeyID)
    /// A handed secret does not match the commitment the record names for its key id.
    case commitmentMismatch(GossipKeyID)
    /// `install` of a key id already in the keyring.
    case alreadyInstalled(GossipKeyID)
    /// `use` of the key that is already primary.
    case alreadyPrimary(GossipKeyID)
    /// A keyring holds at most this many keys.
    case tooManyKeys(Int)
    /// `use` of a key some reachable members do not hold yet.
    case notYetHeld(GossipKeyID, hosts: [String])
    /// `remove` of a key some reachable members still seal with.
    case stillSealing(GossipKeyID, hosts: [String])

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
        case .missingSecret(let id):
            return "the keyring record names gossip key \(id), whose secret this host does not hold and was not handed; send the record with every key's secret"
        case .commitmentMismatch(let id):
            return "the secret handed for gossip key \(id) does not match the commitment the signed record names (altered, or another key with the same id)"
        case .alreadyInstalled(let id):
            return "gossip key \(id) is already installed; `use` it, or install another key"
        case .alreadyPrimary(let id):
            return "gossip key \(id) is already the primary key; nothing to do"
        case .tooManyKeys(let limit):
            return "a gossip keyring holds at most \(limit) keys; remove one first"
        case .notYetHeld(let id, let hosts):
            return "gossip key \(id) is not held yet by \(hosts.joined(separator: ", ")): they could not open what the others seal; wait until `hostmesh keys gossip list` shows it on every member (or pass --force)"
        case .stillSealing(let id, let hosts):
            return "gossip key \(id) is still the key \(hosts.joined(separator: ", ")) seal with: their datagrams would be dropped; wait until they use the new primary (or pass --force)"
        }
    }
}
