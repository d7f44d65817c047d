@testable import Agent
import Foundation
import HA
import Hypervisor
import Testing

/// The lease files' storage layer (Protocol.md §9.2) on a real filesystem: atomic replacement,
/// refusal of damaged and foreign files by path, exactly one winner among concurrent claims, and
/// VMs that cannot be restarted elsewhere said so.
@Suite(.timeLimit(.minutes(1)))
struct LeaseFilesTests {
    final class Directory {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hm-lease-\(UUID().uuidString.prefix(8))").path
        var files: LeaseFiles { LeaseFiles(directory: path + "/.hostmesh") }
        deinit { try? FileManager.default.removeItem(atPath: path) } // test cleanup
    }

    @Test func aLeaseIsReplacedWholeAndReadBack() throws {
        let dir = Directory()
        #expect(try dir.files.read(vm: "vm1", host: "node-a") == nil)
        #expect(try dir.files.leases(vm: "vm1") == [])
        for counter in 0..<50 as Range<UInt64> {
            try dir.files.write(LeaseRecord(vm: "vm1", owner: "node-a", epoch: 3, counter: counter))
        }
        #expect(try dir.files.read(vm: "vm1", host: "node-a") == LeaseRecord(vm: "vm1", owner: "node-a", epoch: 3, counter: 49))
        #expect(!FileManager.default.fileExists(atPath: dir.files.leasePath("vm1", host: "node-a") + ".tmp"))
        // A handover's destination has its own file beside the owner's; another VM's are not listed.
        try dir.files.write(LeaseRecord(vm: "vm1", owner: "node-b", epoch: 4, counter: 0))
        try dir.files.write(LeaseRecord(vm: "vm10", owner: "node-a", epoch: 1, counter: 0))
        #expect(try dir.files.leases(vm: "vm1").map(\.owner) == ["node-a", "node-b"])
    }

    @Test func aDamagedOrForeignLeaseIsRefusedWithItsPath() throws {
        let dir = Directory()
        try dir.files.write(LeaseRecord(vm: "vm1", owner: "node-a", epoch: 3, counter: 7))
        let path = dir.files.leasePath("vm1", host: "node-a")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect { _ = try dir.files.leases(vm: "vm1") } throws: { error in
            guard case .corrupt(path, _)? = error as? LeaseFileError else { return false }
            return "\(error)".contains(path)
        }
        // Another VM's lease where vm2's should be (two VMs given one lease path).
        try Data(LeaseRecord(vm: "vm9", owner: "node-b", epoch: 1, counter: 1).encoded).write(to: URL(fileURLWithPath: dir.files.leasePath("vm2", host: "node-b")))
        #expect(throws: LeaseFileError.otherVM(path: dir.files.leasePath("vm2", host: "node-b"), expected: "vm2", found: "vm9")) {
            _ = try dir.files.leases(vm: "vm2")
        }
        // A lease whose owner is not the host its name says.
        try Data(LeaseRecord(vm: "vm3", owner: "node-b", epoch: 1, counter: 1).encoded).write(to: URL(fileURLWithPath: dir.files.leasePath("vm3", host: "node-c")))
        #expect { _ = try dir.files.leases(vm: "vm3") } throws: { "\($0)".contains(dir.files.leasePath("vm3", host: "node-c")) && "\($0)".contains("names owner node-b") }
    }

    @Test func concurrentClaimsHaveExactlyOneWinner() async throws {
        let dir = Directory()
        let files = dir.files
        for epoch in 3...12 as ClosedRange<Int64> {
            let winners = try await withThrowingTaskGroup(of: String?.self) { group in
                for host in 0..<8 {
                    group.addTask { try files.claim(vm: "vm1", epoch: epoch, host: "node-\(host)") ? "node-\(host)" : nil }
                }
                var won: [String] = []
                for try await winner in group { if let winner { won.append(winner) } }
                return won
            }
            #expect(winners.count == 1, "epoch \(epoch): winners \(winners)")
            #expect(files.claimant(vm: "vm1", epoch: epoch) == winners.first)
        }
        // A claim once made stays made: a later try for the same epoch loses.
        #expect(try files.claim(vm: "vm1", epoch: 3, host: "node-late") == false)
    }

    @Test func aVMWithoutSharedStorageCannotBeRestartedElsewhereAndSaysWhy() throws {
        let boot = VMSpec.Boot.kernel(path: "/k", initrd: nil, commandLine: "")
        let local = VMSpec(id: "a", name: "web", memoryMiB: 64, disks: [.init(path: "/var/lib/vm/web.raw", format: .raw, shared: false)], boot: boot)
        #expect(throws: RestartElsewhereError.localDisk(vm: "web", path: "/var/lib/vm/web.raw")) { _ = try LeaseFiles.directory(for: local) }
        #expect("\(RestartElsewhereError.localDisk(vm: "web", path: "/var/lib/vm/web.raw"))".contains("not on shared storage"))
        let none = VMSpec(id: "b", name: "diskless", memoryMiB: 64, boot: boot)
        #expect(throws: RestartElsewhereError.noDisk(vm: "diskless")) { _ = try LeaseFiles.directory(for: none) }
        let shared = VMSpec(id: "c", name: "db", memoryMiB: 64, disks: [.init(path: "/mnt/shared/db.raw", format: .raw, shared: true)], boot: boot)
        #expect(try LeaseFiles.directory(for: shared) == "/mnt/shared/.hostmesh")
        #expect(VMManager.restartElsewhere(local, leases: true, restartDefault: .onFailure)
            .hasPrefix("no: web cannot be restarted on another host: its disk /var/lib/vm/web.raw is not on shared storage"))
        #expect(VMManager.restartElsewhere(shared, leases: false, restartDefault: .onFailure)
            .hasPrefix("no: its disks are on shared storage, but this agent runs no leases"))
        #expect(VMManager.restartElsewhere(shared, leases: true, restartDefault: .no).hasPrefix("no: its restart policy is not on-failure"))
        #expect(VMManager.restartElsewhere(shared, leases: true, restartDefault: .onFailure).hasPrefix("yes: this host holds its lease"))
    }

    /// The spec file beside the lease (Protocol.md §9.2): written atomically and read back;
    /// absent, damaged or another VM's, it is refused with its path, so nothing is taken over.
    @Test func theSpecFileIsReadBackAndABadOneIsRefusedWithItsPath() throws {
        let root = NSTemporaryDirectory() + "hm-spec-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) } // a temporary directory: leftovers harm nothing
        let files = LeaseFiles(directory: root + "/.hostmesh")
        let boot = VMSpec.Boot.kernel(path: "/k", initrd: nil, commandLine: "")
        var spec = VMSpec(id: "vm1", name: "db", memoryMiB: 64, disks: [.init(path: root + "/db.raw", format: .raw, shared: true)], boot: boot)
        spec.restart = .onFailure
        #expect(throws: VMSpecFileError.missing(path: files.specPath("vm1"))) { _ = try files.readSpec(vm: "vm1") }
        try files.writeSpec(VMSpecFile(spec: spec, owner: "node-a", epoch: 3))
        let back = try files.readSpec(vm: "vm1")
        #expect(back == VMSpecFile(spec: spec, owner: "node-a", epoch: 3))
        #expect(!FileManager.default.fileExists(atPath: files.specPath("vm1") + ".tmp"))

        // Another VM's spec under this VM's name.
        var other = spec
        other.id = "vm2"
        try files.writeSpec(VMSpecFile(spec: other, owner: "node-a", epoch: 3))
        try FileManager.default.moveItem(atPath: files.specPath("vm2"), toPath: files.specPath("vm1") + ".x")
        try FileManager.default.removeItem(atPath: files.specPath("vm1"))
        try FileManager.default.moveItem(atPath: files.specPath("vm1") + ".x", toPath: files.specPath("vm1"))
        #expect(throws: VMSpecFileError.otherVM(path: files.specPath("vm1"), expected: "vm1", found: "vm2")) { _ = try files.readSpec(vm: "vm1") }

        // Damaged: cut short, or not a spec at all.
        let good = try JSONEncoder().encode(VMSpecFile(spec: spec, owner: "node-a", epoch: 3))
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: files.specPath("vm1")))
        do {
            _ = try files.readSpec(vm: "vm1")
            Issue.record("a torn spec file was read")
        } catch let error as VMSpecFileError {
            guard case let .corrupt(path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == files.specPath("vm1"))
            #expect("\(error)".contains(files.specPath("vm1")) && "\(error)".contains("Nothing is taken over"))
        }
        try Data("hostmesh-lease 1\n".utf8).write(to: URL(fileURLWithPath: files.specPath("vm1")))
        #expect(throws: VMSpecFileError.self) { _ = try files.readSpec(vm: "vm1") }
    }
}
