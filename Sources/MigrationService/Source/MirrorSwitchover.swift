/// Where the mirrors stand at the switchover pause (shared with QEMU's progress callback).
enum MirrorSwitchover: Sendable {
    case waiting, completing, completed
    case failed(String)

    /// Claims the switchover: true the first time only.
    mutating func begin() -> Bool {
        guard case .waiting = self else { return false }
        self = .completing
        return true
    }

    var failure: String? {
        if case .failed(let why) = self { return why }
        return nil
    }
}
