import Foundation

/// For the end-to-end tests only: with `HOSTMESH_TEST_PARENT_PID=<pid>` (the test process sets it
/// on every agent it starts) the agent checks once a second that the test process still runs, and
/// when it is gone (killed by a timeout or by hand, so no teardown ran) kills the QEMUs it started
/// (their `qemu.pid` under `<state_dir>/vms/`) and exits. Without it a killed test run leaves its
/// agents and guests running, and every later run on the machine pays for them.
enum TestParentWatch {
    static func start(stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let text = environment["HOSTMESH_TEST_PARENT_PID"], let parent = pid_t(text), parent > 1 else { return }
        let thread = Thread {
            while kill(parent, 0) == 0 || errno == EPERM { sleep(1) }
            let vms = stateDirectory + "/vms"
            // Unreadable: there is nothing of ours to stop; exit all the same.
            for id in (try? FileManager.default.contentsOfDirectory(atPath: vms)) ?? [] {
                // No pid file or not a number: that VM's QEMU is not running.
                guard let pidText = try? String(contentsOfFile: "\(vms)/\(id)/qemu.pid", encoding: .utf8),
                      let pid = pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
                // Only a QEMU of this VM: a pid the kernel gave to something else since is left alone.
                let commandLine = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                if commandLine.contains("qemu") && commandLine.contains("\(vms)/\(id)/") { kill(pid, SIGKILL) }
            }
            FileHandle.standardError.write(Data("test process \(parent) is gone: stopped this agent's QEMUs, exiting\n".utf8))
            exit(3)
        }
        thread.name = "hm-test-parent-watch"
        thread.start()
    }
}
