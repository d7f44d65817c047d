/// The journaled phases of a storage move (Protocol.md §6.8).
enum StorageMovePhase: String, Sendable, CaseIterable {
    /// Before the target image is created: the mirror may run; the old file is the disk.
    case copying
    /// With the guest paused by the move, before QEMU is asked to switch files.
    case pivoting
    /// QEMU reads the new file, and the VM's spec names it (same transaction).
    case switched
    /// The old file is gone (or kept: it was never the disk again).
    case done
    /// Rolled back: the old file is the disk, the target was deleted.
    case aborted
}

/// What a restarted agent does with a storage move its last run left unfinished: a pure function
/// of the journaled phase and what QEMU says now (Protocol.md §6.8, "Recovery").
enum StorageMoveRecovery {
    /// The VM's QEMU, as the recovering agent finds it.
    enum QEMU: Equatable, Sendable {
        /// No QEMU for the VM (it died, or the host rebooted).
        case gone
        /// Alive; its device reads the old file.
        case readsOld
        /// Alive; its device reads the target.
        case readsTarget
        /// Alive, but it does not say which file (QMP fails): nothing can be decided.
        case unknown
    }

    /// What to do.
    enum Action: Equatable, Sendable {
        /// The old file stays the disk: stop any mirror, remove the target's nodes, delete the
        /// target, journal `aborted`; `resume` when the move had paused the guest.
        case rollBack(resume: Bool)
        /// The target is the disk: journal `switched` with the spec (if not yet), `resume` when
        /// the move had paused the guest, remove the old nodes, delete the old file, journal `done`.
        case finish(resume: Bool)
        /// Leave the journal as it is and the VM with a problem; the next start tries again.
        case undecided(reason: String)
    }

    static func decide(phase: StorageMovePhase, qemu: QEMU) -> Action {
        switch (phase, qemu) {
        case (.done, _), (.aborted, _):
            return .undecided(reason: "the move is finished") // never asked: only unfinished moves are recovered
        case (_, .unknown):
            return .undecided(reason: "QEMU does not say which file the disk reads")
        // Before the pause the guest wrote to the old file first (write-blocking: to both);
        // the device never read the target.
        case (.copying, .gone), (.copying, .readsOld):
            return .rollBack(resume: false)
        case (.copying, .readsTarget):
            // QEMU switches only when asked, which comes after `pivoting`: should not happen, but
            // the file the live device reads is the disk.
            return .finish(resume: false)
        // Paused by the move. A dead QEMU never ran the guest on the target (it resumes only
        // after `switched`), and the old file had every write up to the pause.
        case (.pivoting, .gone):
            return .rollBack(resume: false)
        case (.pivoting, .readsOld):
            return .rollBack(resume: true)
        case (.pivoting, .readsTarget):
            return .finish(resume: true)
        // The switch is journaled: the target is the disk.
        case (.switched, .gone):
            return .finish(resume: false)
        case (.switched, .readsTarget):
            return .finish(resume: true)
        case (.switched, .readsOld):
            return .undecided(reason: "the journal says the disk switched files but QEMU still reads the old one: check `hostmesh vm show` and the files by hand")
        }
    }
}

/// A storage move that cannot go on.
enum StorageMoveError: Error, CustomStringConvertible {
    case journal(String)
    /// QEMU switched files and the journal could not say so: the VM stays off limits.
    case switchNotJournaled(String)

    var description: String {
        switch self {
        case .journal(let what): return "the storage move journal: \(what)"
        case .switchNotJournaled(let what): return what
        }
    }
}
