import Foundation

/// Fault-injection hooks for the end-to-end tests (never set in production): with
/// `HOSTMESH_TEST_PAUSE_AT=<role>:<phase>` the agent, right after journaling that phase (or, for
/// `recovery:<role>`, before recovering an unfinished migration of that role), creates
/// `<state_dir>/test-paused-at` and waits until `<state_dir>/test-continue` exists, so a test can
/// kill something at exactly that point. `HOSTMESH_TEST_CUT_AT=<role>:<phase>` makes the agent
/// drop its control channel there instead (a cut connection).
///
/// `HOSTMESH_TEST_FAIL_JOURNAL_AT=<role>:<phase>` makes the journal write of that phase fail, as
/// a full or broken disk would.
///
/// Either variable set to `file` reads the point afresh at every phase from
/// `<state_dir>/test-pause-at` (or `test-cut-at`; absent or empty: nowhere), so one long-running
/// agent can be paused at a different point for each case of a fault matrix without a restart.
struct TestHooks: Sendable {
    let pauseAt: String?
    let cutAt: String?
    let failJournalAt: String?
    let stateDirectory: String

    init(stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.stateDirectory = stateDirectory
        pauseAt = environment["HOSTMESH_TEST_PAUSE_AT"]
        cutAt = environment["HOSTMESH_TEST_CUT_AT"]
        failJournalAt = environment["HOSTMESH_TEST_FAIL_JOURNAL_AT"]
    }

    /// The point in force: the variable's value, or the file's content in `file` mode.
    private func point(_ setting: String?, file: String) -> String? {
        guard setting == "file" else { return setting }
        guard let data = FileManager.default.contents(atPath: stateDirectory + "/" + file) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Called after each journaled phase.
    func reached(_ point: String) async {
        guard let pauseAt, point == self.point(pauseAt, file: "test-pause-at") else { return }
        FileManager.default.createFile(atPath: stateDirectory + "/test-paused-at", contents: Data(point.utf8))
        while !FileManager.default.fileExists(atPath: stateDirectory + "/test-continue") {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// True when the journal write of this point must fail.
    func failsJournal(_ point: String) -> Bool { failJournalAt == point }

    /// True when the control channel should be cut at this point.
    func cuts(_ point: String) -> Bool { cutAt != nil && point == self.point(cutAt, file: "test-cut-at") }
}
