/// What `DestinationExecutor` needs from the world to carry out `DestinationMigration`'s
/// directives (Protocol.md §6.4). The agent implements it with the journal, QEMU, the switch and
/// the answer to the source's message; the seeded simulation implements it with a simulated
/// world. An implementation decides nothing about the protocol.
public protocol DestinationMigrationEnvironment {
    /// Persists `phase` durably (for `committed`, with the VM's row at the new epoch; for
    /// `discarded`, with `reason` and without the row a commit wrote); throws when it could not
    /// be written.
    func journal(_ phase: DestinationMigration.Phase, reason: String?) async throws
    /// Reserves capacity and starts QEMU waiting for the stream; reports `.ready` or `.launchFailed`.
    func launchIncoming() async -> DestinationMigration.Event?
    /// Answers the prepare (nil: admitted).
    func replyPrepared(refusal: String?) async
    /// Resumes the guest; reports `.resumed` or `.resumeFailed` (nil: later).
    func resume() async -> DestinationMigration.Event?
    /// Answers the commit (nil: the guest runs here).
    func replyCommitted(error: String?) async
    /// Kills this migration's QEMU and releases its reservation and ports.
    func discard() async
    /// Answers a query.
    func replyVerdict(_ verdict: DestinationMigration.Verdict) async
}
