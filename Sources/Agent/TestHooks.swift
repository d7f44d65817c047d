import Foundation

/// Fault-injection hooks for the end-to-end tests (never set in production): with
/// `HOSTMESH_TEST_PAUSE_AT=<role>:<phase>` the agent, right after journaling that phase, creates
/// `<state_dir>/test-paused-at` and waits until `<state_dir>/test-continue` exists, so a test can
/// kill something at exactly that point. `HOSTMESH_TEST_CUT_AT=<role>:<phase>` makes the agent
/// drop its control channel there instead (a cut connection).
struct TestHooks: Sendable {
    let pauseAt: String?
    let cutAt: String?
    let stateDirectory: String

    init(stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.stateDirectory = stateDirectory
        pauseAt = environment["HOSTMESH_TEST_PAUSE_AT"]
        cutAt = environment["HOSTMESH_TEST_CUT_AT"]
    }

    /// Called after each journaled phase.
    func reached(_ point: String) async {
        guard point == pauseAt else { return }
        FileManager.default.createFile(atPath: stateDirectory + "/test-paused-at", contents: Data(point.utf8))
        while !FileManager.default.fileExists(atPath: stateDirectory + "/test-continue") {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// True when the control channel should be cut at this point.
    func cuts(_ point: String) -> Bool { point == cutAt }
}
