/// What a stream channel between two agents carries (the secure channel's purpose, Protocol.md
/// §6.3, §6.7). Each begins with a `MigrationStreamHello` naming the migration; the destination
/// accepts it only from the source it admitted that migration from.
public enum StreamPurpose: String, Sendable, CaseIterable {
    /// One QEMU migration connection (memory and device state).
    case migration = "migration-stream"
    /// One NBD connection of a disk mirror, from the source QEMU's NBD client to the destination
    /// QEMU's NBD server.
    case nbd = "nbd-stream"
}
