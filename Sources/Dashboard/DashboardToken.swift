import Foundation
import MeshCrypto
import MeshIdentity

/// The dashboard's access token: 32 random bytes as 64 hex digits, kept in the state directory's
/// `dashboard.token` with mode 0600 (only root reads it, as only root talks to the control socket).
///
/// Whoever holds the token can do what `hostmesh` can do through the dashboard (migrate, apply
/// DRS moves, enter maintenance): it is the same trust as the control socket, carried over HTTP.
public enum DashboardToken {
    /// Digits of a token: 32 bytes of libsodium's randomness in lowercase hex.
    static let length = 64

    /// The token at `path`, created first if there is none. A file that group or others can read,
    /// or that does not hold a token, is refused with the fix.
    public static func loadOrCreate(path: String) throws -> String {
        if !FileManager.default.fileExists(atPath: path) {
            let token = Sodium.randomBytes(length / 2).map { String(format: "%02x", $0) }.joined()
            do { try SecureFile.write(Array((token + "\n").utf8), to: path, mode: 0o600) } catch {
                // Another `hostmesh dashboard token` or the agent made it first: read theirs.
                guard case .fileExists = error else { throw DashboardError.token(path: path, reason: "\(error)") }
            }
        }
        return try load(path: path)
    }

    /// The token at `path`; refused when missing, readable by group or others, or malformed.
    public static func load(path: String) throws -> String {
        let bytes: [UInt8]
        do { bytes = try SecureFile.readSecret(path, what: "dashboard token") } catch {
            throw DashboardError.token(path: path, reason: "\(error)")
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == length, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw DashboardError.token(path: path, reason: "it does not hold a token (64 hex digits); delete it and run `hostmesh dashboard token` to make a new one")
        }
        return text
    }

    /// True when `given` is `expected`, in time that depends only on their lengths (never on
    /// where they differ), so a client cannot find the token byte by byte by timing refusals.
    public static func matches(_ given: some StringProtocol, _ expected: String) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<b.count {
            difference |= (i < a.count ? a[i] : 0) ^ b[i]
        }
        return difference == 0
    }
}
