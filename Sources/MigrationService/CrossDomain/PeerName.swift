public import SecureChannel

/// How a migration names the host at its other end (Protocol.md §6.10): a host of this domain by
/// its host id, as always; a host of another domain as `host@domain`. Host ids never contain `@`
/// (`[a-z0-9._-]`, §2.1), so a host of another domain can never be taken for a member of this one
/// whose host id it shares: the coordinator, the journal, the ownership records and recovery key
/// their peers by this name, and a cross-domain peer is (domain, host), never host alone.
public enum PeerName {
    /// The separator between host id and domain.
    public static let separator: Character = "@"

    /// The name of an authenticated peer, seen from a host of `localDomain`.
    public static func of(_ peer: PeerIdentity, localDomain: String) -> String {
        peer.domain == localDomain ? peer.hostID : qualified(host: peer.hostID, domain: peer.domain)
    }

    /// `host@domain`.
    public static func qualified(host: String, domain: String) -> String { "\(host)\(separator)\(domain)" }

    /// The host id and, for a host of another domain, its domain.
    public static func split(_ name: String) -> (host: String, domain: String?) {
        guard let at = name.firstIndex(of: separator) else { return (name, nil) }
        return (String(name[..<at]), String(name[name.index(after: at)...]))
    }

    /// True when `name` is a host of another domain.
    public static func isCrossDomain(_ name: String) -> Bool { name.contains(separator) }
}
