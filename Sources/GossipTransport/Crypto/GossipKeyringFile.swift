import MeshCrypto

/// The text format of the agent's gossip keyring file (`gossip.keys`, Protocol.md §4.12.2).
///
/// ```
/// # hostmesh gossip keyring: keep this file mode 0600
/// primary 5f0c…(64 hex digits)   # key id 1a2b3c4d
/// key     9be1…(64 hex digits)   # key id 77e0a1f2
/// ```
///
/// One key per line: `primary` marks the key that seals (exactly one), `key` a key that only
/// opens. `#` starts a comment; blank lines are ignored. The file holds secrets: the agent MUST
/// read it with `SecureFile.readSecret` (which refuses a file group or others can read) and
/// write it with `SecureFile.write(…, mode: 0o600)`. This type only converts text and keys, so
/// it can be tested without files.
public enum GossipKeyringFile {
    /// Conventional file name in the agent's state directory.
    public static let defaultFileName = "gossip.keys"

    /// Reads a keyring from the file's bytes.
    public static func parse(_ bytes: [UInt8]) throws(GossipKeyringError) -> GossipKeyring {
        var primary: GossipKey?
        var others: [GossipKey] = []
        let text = String(decoding: bytes, as: UTF8.self)
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw .fileMalformed(line: lineNumber, reason: "expected two fields, found \(fields.count)")
            }
            guard fields[1].utf8.count == 2 * GossipKey.length, var secret = Hex.decode(String(fields[1])) else {
                throw .fileMalformed(line: lineNumber, reason: "the key is not 64 hex digits")
            }
            let key = try GossipKey(bytes: secret)
            for index in secret.indices { secret[index] = 0 }
            switch fields[0] {
            case "primary":
                guard primary == nil else { throw .multiplePrimaryKeys }
                primary = key
            case "key":
                others.append(key)
            default:
                throw .fileMalformed(line: lineNumber, reason: "unknown kind '\(fields[0])', expected 'primary' or 'key'")
            }
        }
        guard let primary else { throw .noPrimaryKey }
        return try GossipKeyring(primary: primary, others: others)
    }

    /// The file's bytes for `keyring`: the primary first, each line commented with its key id.
    /// Contains secrets; write it with mode 0600.
    public static func encode(_ keyring: GossipKeyring) -> [UInt8] {
        var text = "# hostmesh gossip keyring: keep this file mode 0600\n"
        for key in keyring.keys {
            let kind = key.id == keyring.primaryID ? "primary" : "key"
            text += "\(kind) \(Hex.encode(key.revealForStorage()))  # key id \(key.id)\n"
        }
        return Array(text.utf8)
    }
}
