/// What `SourceExecutor` needs from the world to carry out `SourceMigration`'s directives
/// (Protocol.md §6.4). The agent implements it with the journal, the peer's channel, QEMU and the
/// switch; the seeded simulation in the tests implements it with a simulated world. An
/// implementation decides nothing about the protocol: it does what a directive says and reports
/// what happened.
///
/// Methods that return an event report the outcome of a request; nil means the answer will come
/// later through `SourceExecutor.handle(_:)` (or not at all).
public protocol SourceMigrationEnvironment {
    /// Persists `phase` durably; throws when it could not be written.
    func journal(_ phase: SourceMigration.Phase) async throws
    /// Asks the destination to admit the VM.
    func sendPrepare() async -> SourceMigration.Event?
    /// Opens the tunnel for QEMU's stream.
    func openTransfer() async -> SourceMigration.Event?
    /// Starts mirroring the local disks into the destination's images; reports `.mirrorsReady`
    /// once all are synchronised, or `.mirrorFailed`.
    func startMirrors() async -> SourceMigration.Event?
    /// Stops the disk mirrors, if any (best effort).
    func cancelMirrors() async
    /// Deletes the source's copies of the mirrored disks (best effort: a file left behind is
    /// logged, never the only copy).
    func deleteSourceDisks() async
    /// Starts QEMU's outgoing migration; reports its completion, post-copy or failure.
    func startTransfer() async -> SourceMigration.Event?
    /// Sends the commit and waits for the destination's answer.
    func sendCommit() async -> SourceMigration.Event?
    /// Tells the destination to discard its copy (best effort).
    func sendAbort(_ reason: String) async
    /// Asks the destination what it knows; nil when it does not answer (now).
    func queryPeer() async -> SourceMigration.Event?
    /// Takes the VM back at the migration's epoch + 2, durably; throws when it could not be written.
    func reclaim() async throws
    /// Makes sure the guest runs here.
    func resumeLocal() async
    /// Keeps the guest paused and the VM held: in memory always, durably if it can (a failed
    /// write is logged and reported, not thrown: the in-memory hold is what keeps it safe).
    func keepPaused() async
    /// Forgets the VM here at the migration's epoch + 1 (durably) and quits its QEMU; throws
    /// when the write failed (then nothing was quit).
    func releaseLocal() async throws
    /// The migration ended with the guest on the destination.
    func succeeded() async
    /// The migration ended without moving the guest, or in doubt.
    func failed(_ failure: SourceMigration.Failure) async
}
