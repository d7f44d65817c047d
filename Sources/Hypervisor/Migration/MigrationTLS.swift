import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// QEMU's own TLS for a migration stream with a pre-shared key (`tls-creds-psk`): the data path
/// where QEMU speaks to QEMU directly and the agents only agree on the key (derived per
/// migration from their authenticated handshake).
///
/// Lifecycle: `create` writes `keys.psk` (0600, in a 0700 directory); `install` on both QEMUs
/// before `migrate-incoming` / `migrate`; `uninstall` and `destroy` once the migration ended.
/// The server side (destination) reads the key file during the TLS handshake, so it must exist
/// until the stream is connected.
public struct MigrationTLS: Sendable {
    /// Which end of the stream a QEMU is.
    public enum Endpoint: String, Sendable {
        /// The source (connects).
        case client
        /// The destination (listens).
        case server
    }

    /// QOM id of the credentials object in both QEMUs.
    public let credentialsID: String
    /// Directory holding `keys.psk`.
    public let directory: String
    /// PSK identity (the client presents it; the server looks it up in `keys.psk`).
    public let username: String

    /// Writes `directory/keys.psk` with `username:hex(key)`, creating `directory` (0700).
    ///
    /// - Parameters:
    ///   - key: at least 16 bytes of secret, unique to this migration.
    ///   - credentialsID: QOM id; unique per concurrent migration in one QEMU.
    public static func create(directory: String, key: [UInt8], username: String = "hostmesh",
                              credentialsID: String = "hm-migration-tls") throws(HypervisorError) -> MigrationTLS {
        guard key.count >= 16 else {
            throw .runtimeDirectory(path: directory, reason: "the migration PSK must be at least 16 bytes, got \(key.count)")
        }
        guard !username.contains(":"), !username.contains("\n"), !username.isEmpty else {
            throw .runtimeDirectory(path: directory, reason: "the PSK username must be non-empty without ':' or newlines")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .runtimeDirectory(path: directory, reason: error.localizedDescription)
        }
        let line = username + ":" + key.map { String(format: "%02x", $0) }.joined() + "\n"
        let path = directory + "/keys.psk"
        // Created 0600 before any byte of the key is written.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw .runtimeDirectory(path: directory, reason: "cannot create keys.psk: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let written = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, line.utf8.count) }
        guard written == line.utf8.count else {
            throw .runtimeDirectory(path: directory, reason: "cannot write keys.psk")
        }
        return MigrationTLS(credentialsID: credentialsID, directory: directory, username: username)
    }

    /// Adds the credentials object to a QEMU and makes its migration use it. Call before
    /// `migrate-incoming` (server) or `migrate` (client).
    public func install(on qmp: QMPClient, as endpoint: Endpoint) async throws(QMPError) {
        var arguments: [String: JSONValue] = [
            "qom-type": .string("tls-creds-psk"), "id": .string(credentialsID),
            "endpoint": .string(endpoint.rawValue), "dir": .string(directory),
        ]
        if endpoint == .client { arguments["username"] = .string(username) }
        try await qmp.execute("object-add", arguments: .object(arguments))
        try await qmp.migrateSetParameters(MigrationParameterSet(tlsCreds: credentialsID))
    }

    /// Turns TLS off for later migrations and removes the credentials object (best effort: the
    /// QEMU may already be gone).
    public func uninstall(from qmp: QMPClient) async {
        // Best effort, as documented: a QEMU that is gone has no credentials left to remove.
        _ = try? await qmp.migrateSetParameters(MigrationParameterSet(tlsCreds: ""))
        _ = try? await qmp.execute("object-del", arguments: .object(["id": .string(credentialsID)])) // best effort, as above
    }

    /// Deletes the key file and its directory.
    public func destroy() {
        try? FileManager.default.removeItem(atPath: directory) // best effort: 0700, and the key is this migration's only
    }
}
