import Foundation
import Hypervisor
import Testing

/// The QMP client against a real QEMU with no guest (`-machine none`): fast, no kernel needed.
@Suite("QMP against real QEMU", .qemuInstalled, .timeLimit(.minutes(1)))
struct QEMUQMPTests {
    @Test func negotiatesRunsCommandsAndStreamsEvents() async throws {
        let directory = TestSupport.temporaryDirectory()
        let socket = directory + "/qmp.sock"
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: try TestSupport.resolveQEMU())
        qemu.arguments = ["-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
                          "-qmp", "unix:\(socket),server=on,wait=off"]
        qemu.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try qemu.run()
        defer {
            qemu.terminate()
            qemu.waitUntilExit()
            TestSupport.remove(directory)
        }
        #expect(await TestSupport.eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: socket) })
        let client = try await QMPClient.connect(path: socket)
        #expect(client.greeting.major >= 7)

        let status = try await client.queryStatus()
        #expect(status.status == .running || status.status == .prelaunch)
        #expect(try await client.queryKVM().enabled == false)
        #expect(try await client.humanMonitorCommand("info version").contains("\(client.greeting.major).\(client.greeting.minor)"))

        await #expect(throws: QMPError.commandFailed(command: "no-such-command", errorClass: "CommandNotFound",
                                                     description: "The command no-such-command has not been found")) {
            try await client.execute("no-such-command")
        }

        try await client.migrateSetParameters(MigrationSettings().sourceParameters)
        let parameters = try await client.queryMigrateParameters()
        #expect(parameters.maxBandwidth == 10 << 30)
        #expect(parameters.downtimeLimitMs == 300)
        try await client.migrateSetCapabilities(MigrationSettings().capabilities)
        #expect(try await client.queryMigrateCapabilities()[.events] == true)
        #expect(try await client.queryMigrate().status == nil)

        let events = client.events()
        try await client.stop()
        try await client.cont()
        var names: [String] = []
        for await event in events {
            names.append(event.name)
            if names.count == 2 { break }
        }
        #expect(names == ["STOP", "RESUME"])

        try await client.quit()
        await client.waitUntilClosed()
        await #expect(throws: QMPError.disconnected(command: "query-status", reason: "QEMU closed the socket")) {
            try await client.queryStatus()
        }
    }
}
