import ControlAPI
import Foundation
import Hypervisor
import Testing

/// README.md's "Running a host by hand" is a test: its fenced block runs line by line, as written,
/// in two lab hosts (issue 21). What differs from a person typing it on two machines, and only
/// that: `hostmesh` is the built binary (put on PATH), the working directory is the lab's shared
/// directory (holding `vmlinuz` and `initrd.img`, the test guest's), each host's
/// `/var/lib/hostmesh` is a directory of this test mounted there in that host's own mount
/// namespace, and the addresses 10.0.0.1 and 10.0.0.2 become the lab hosts'.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: Lab.available, "needs root and iproute2 (network namespaces)"),
       .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct ReadmeManualSetupTests {
    /// One command of the block and the host it runs on (`# on node-a …` switches hosts).
    struct Step {
        let host: String
        let line: String
        /// A command put in the background (`hostmesh agent &`).
        var isBackground: Bool { line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces).hasSuffix("&") }
    }

    static var readme: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return (try? String(contentsOf: url.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }

    /// The commands of the first fenced block under "## Running a host by hand".
    static func steps(_ readme: String) -> [Step] {
        guard let section = readme.range(of: "\n## Running a host by hand\n") else { return [] }
        var steps: [Step] = [], host: String?, inBlock = false
        for line in readme[section.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if inBlock { break }
                inBlock = true
                continue
            }
            guard inBlock else { continue }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("# on ") {
                host = text.dropFirst("# on ".count).split(separator: " ").first.map(String.init)
            } else if !text.isEmpty && !text.hasPrefix("#"), let host {
                steps.append(Step(host: host, line: text))
            }
        }
        return steps
    }

    @Test func theBlockNamesTwoHostsAndEveryCommandIsHostmesh() {
        let steps = Self.steps(Self.readme)
        #expect(Set(steps.map(\.host)) == ["node-a", "node-b"])
        #expect(!steps.isEmpty && steps.allSatisfy { $0.line.hasPrefix("hostmesh ") })
        #expect(steps.contains { $0.line.contains("join 10.0.0.1:7946") } && steps.contains { $0.line.contains("migrate web --to 10.0.0.2:7946") })
    }

    @Test func theManualSetupRunsAsWrittenInTwoLabHostsAndMigratesTheVM() async throws {
        let steps = Self.steps(Self.readme)
        try #require(!steps.isEmpty, "no fenced block under ## Running a host by hand in README.md")
        let lab = try Lab(hosts: 2)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let hosts = ["node-a": 1, "node-b": 2]
        try FileManager.default.createSymbolicLink(atPath: lab.shared + "/vmlinuz", withDestinationPath: TestGuest.kernel)
        try FileManager.default.createSymbolicLink(atPath: lab.shared + "/initrd.img", withDestinationPath: TestGuest.initrd)
        let binaries = URL(fileURLWithPath: AgentProcess.binary).deletingLastPathComponent().path
        func stateDirectory(_ host: String) -> String { mesh.root + "/" + host }
        for host in hosts.keys {
            try FileManager.default.createDirectory(atPath: stateDirectory(host), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }

        var outputs: [String] = [], firstSeen: (String, Int)?
        for (index, step) in steps.enumerated() {
            let host = try #require(hosts[step.host], "README names a host \(step.host) the test does not know")
            let line = step.line.replacingOccurrences(of: "10.0.0.1", with: lab.address(1)).replacingOccurrences(of: "10.0.0.2", with: lab.address(2))
            // `ip netns exec` gives every command its own mount namespace, with / a slave of the
            // machine's: these mounts are seen by this command (and the agent it may leave
            // running, and that agent's QEMUs) and by nothing else.
            let script = """
                set -e
                mount -t tmpfs -o mode=0755 hm-readme /var/lib
                mkdir /var/lib/hostmesh
                mount --bind '\(stateDirectory(step.host))' /var/lib/hostmesh
                cd '\(lab.shared)'
                export PATH='\(binaries)':"$PATH"
                \(line)
                """
            let log = mesh.root + "/step-\(index)-\(step.host).log"
            let pid = try spawn(Lab.ip, ["netns", "exec", lab.namespace(host), "/bin/sh", "-c", script], logPath: log)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            outputs.append(output)
            try #require(status == 0, "README step \(index) on \(step.host) failed (status \(status)): \(step.line)\n\(output)")
            if step.isBackground {
                // As a person waits for the agent to say it listens before typing the next command.
                let socket = stateDirectory(step.host) + "/control.sock"
                let deadline = ContinuousClock.now + .seconds(20)
                while !FileManager.default.fileExists(atPath: socket) && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                try #require(FileManager.default.fileExists(atPath: socket), "the agent of \(step.host) did not start:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            if step.line.hasPrefix("hostmesh vm create web") {
                // As a person waits for the guest to boot before moving it: its first heartbeats.
                firstSeen = try await heartbeat(on: stateDirectory(step.host), after: 2)
            }
        }

        // The agents advertised their lab addresses, found by themselves; members shows them.
        let members = zip(steps, outputs).first { $0.0.line == "hostmesh members" }?.1 ?? ""
        #expect(members.contains(lab.address(1) + ":7946") && members.contains(lab.address(2) + ":7946"), "\(members)")
        // The VM went to node-b and came back to node-a, the same boot all along.
        let a = ControlClient(path: stateDirectory("node-a") + "/control.sock")
        let b = ControlClient(path: stateDirectory("node-b") + "/control.sock")
        #expect(try await a.call("vm.list", Empty(), as: [VMInfo].self).map { "\($0.name) \($0.state)" } == ["web running"])
        #expect(try await b.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let history = try await a.call("migrations", Empty(), as: [MigrationRecord].self)
        #expect(history.map(\.role) == ["destination", "source"] && history.allSatisfy { $0.error == nil })
        let before = try #require(firstSeen, "the block has no `hostmesh vm create web` step")
        let back = try await heartbeat(on: stateDirectory("node-a"), after: before.1)
        #expect(back.0 == before.0, "the guest rebooted: boot \(back.0) after \(before.0)")
    }

    /// Waits until the VM web's console on the agent of `stateDirectory` shows a heartbeat above
    /// `after`; returns the last one (boot id prefix, counter).
    func heartbeat(on stateDirectory: String, after: Int) async throws -> (String, Int) {
        let control = ControlClient(path: stateDirectory + "/control.sock")
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let console = try await control.call("vm.console", ControlTypes.Console(vm: "web", lines: 10_000), as: ControlTypes.Text.self).text
            if let last = heartbeats(console).last, last.1 > after { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ControlError.failed("no heartbeat above \(after) from web on \(stateDirectory)")
    }
}
