import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// The fault matrix over the disk phases of a migration with a local disk (issue 11 item 6;
/// Protocol.md §6.7): the same rig, faults and invariants as `FaultInjectionTests`, with the
/// guest's disk-log disk a 16 MiB image local to its owner, mirrored with it. Two points:
///
/// - `source:mirrors-running`: the mirror jobs have started and copy into the destination's new
///   image through the NBD tunnel (the source journaled `mirroring`);
/// - `source:switchover`: QEMU stopped the guest at its switchover pause (`pre-switchover`) and
///   the mirrors are about to complete (the source journaled `transferring`).
///
/// Both are before `committing`, so the guest goes on at the source on its own image, with every
/// acknowledged record on it, at the same epoch; or, at the switchover, at epoch + 2 when QEMU
/// finished sending before the fault reached the source and the commit was refused (the
/// destination discarded its copy). Killing the source QEMU kills the guest's only copy: its
/// owner restarts it from its local image. On top of `FaultRig`'s invariants, after every case
/// no image is left in either agent's storage directory but the one the guest runs on, and no
/// NBD export or NBD tunnel listens under either state directory; each column ends with a
/// migration that must succeed (no mirror job, NBD client or QEMU migration left behind on the
/// source). The lab columns (`acrossTheLab…`) run the faults whose outcome depends on the network
/// with the two agents on two hosts of a lab (Scripts/lab.sh), the NBD stream crossing the bridge.
@Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct DiskFaultInjectionTests {
    typealias Case = FaultInjectionTests.Case

    static let matrix: [FaultInjectionTests.Fault: [Case]] = [
        .killSourceAgent: [
            Case("source:mirrors-running", .source(epochStep: 0)),
            Case("source:switchover", .source(epochStep: 0)),
        ],
        .killDestinationAgent: [
            Case("source:mirrors-running", .source(epochStep: 0)),
            Case("source:switchover", .sourceEitherSide),
        ],
        .killSourceQEMU: [
            Case("source:mirrors-running", .restarted(owner: .source)),
            Case("source:switchover", .restarted(owner: .source)),
        ],
        .killDestinationQEMU: [
            Case("source:mirrors-running", .source(epochStep: 0)),
            Case("source:switchover", .sourceEitherSide),
        ],
        .cutConnection: [
            Case("source:mirrors-running", .source(epochStep: 0)),
            Case("source:switchover", .sourceEitherSide),
        ],
    ]

    @Test(arguments: FaultInjectionTests.Fault.allCases)
    func aGuestWithALocalDiskSurvivesOnItsOwnImage(_ fault: FaultInjectionTests.Fault) async throws {
        let rig = try await FaultRig.start(localDisk: true)
        defer { rig.tearDown() }
        try await rig.runColumn(fault, matrix: Self.matrix)
        // Nothing of the faults is left in the way: the next migration moves the guest and its disk.
        let source = rig.agent(rig.owner), destination = rig.other(rig.owner)
        try rig.setPause(source, at: "")
        (_, rig.beat) = try await rig.heartbeat(on: source, after: rig.beat)
        let report = try await rig.migrate(from: source, to: destination)
        #expect(report.disks?.count == 1, "\(fault.rawValue): the clean migration moved no disk: \(report)")
        try await rig.settle("\(fault.rawValue), clean migration", .destination, source: source, destination: destination)
        try await rig.checkInvariants("\(fault.rawValue), clean migration", .destination, source: source, destination: destination, epochBefore: rig.epoch)
        try await rig.checkNoDiskLeftovers("\(fault.rawValue), clean migration")
    }

    /// The faults whose outcome depends on the network, across a lab's bridge: a cut connection
    /// (the NBD tunnel and the memory stream cut in both hosts' namespaces, not on loopback) and
    /// the SIGKILL of either agent (each end of the NBD tunnel dies with its agent; the survivor
    /// sees the cut over a real link, and the killed one comes back in its own namespace). The
    /// QEMU kills are left to loopback: a QEMU dies the same way wherever its peer is, and its
    /// agent sees that on a local QMP socket. Same phases, outcomes and invariants as loopback,
    /// NBD listeners looked for in each agent's own namespace.
    static let labFaults: [FaultInjectionTests.Fault] = [.cutConnection, .killSourceAgent, .killDestinationAgent]

    @Test(.enabled(if: Lab.available, "needs root and iproute2 (network namespaces)"), arguments: labFaults)
    func acrossTheLabAGuestWithALocalDiskSurvivesOnItsOwnImage(_ fault: FaultInjectionTests.Fault) async throws {
        let rig = try await FaultRig.start(on: .lab, localDisk: true)
        defer { rig.tearDown() }
        let lab = try #require(rig.mesh.lab)
        try await rig.runColumn(fault, matrix: Self.matrix)
        #expect(rig.a.address == lab.address(1) + ":7946" && rig.b.address == lab.address(2) + ":7946", "a killed agent came back outside its host")
        // And the next migration across the bridge moves the guest and its disk.
        let source = rig.agent(rig.owner), destination = rig.other(rig.owner)
        try rig.setPause(source, at: "")
        (_, rig.beat) = try await rig.heartbeat(on: source, after: rig.beat)
        let report = try await rig.migrate(from: source, to: destination)
        #expect(report.disks?.count == 1, "\(fault.rawValue) (lab): the clean migration moved no disk: \(report)")
        try await rig.settle("\(fault.rawValue) (lab), clean migration", .destination, source: source, destination: destination)
        try await rig.checkInvariants("\(fault.rawValue) (lab), clean migration", .destination, source: source, destination: destination, epochBefore: rig.epoch)
        try await rig.checkNoDiskLeftovers("\(fault.rawValue) (lab), clean migration")
    }
}

extension FaultRig {
    /// No image in either agent's storage directory but the one the guest runs on, the guest's
    /// image there, and no NBD export (the destination QEMU's `nbd.sock`) or NBD tunnel (the
    /// source agent's `nbd-*.sock`) listening under either state directory. Waits (bounded) for a
    /// destination still finishing its discard.
    func checkNoDiskLeftovers(_ context: String) async throws {
        func images() -> [String] {
            [a, b].flatMap { agent -> [String] in
                let root = agent.stateDirectory + "/disks"
                let found = FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []
                return found.filter { $0.hasSuffix(".raw") || $0.hasSuffix(".qcow2") }.map { root + "/" + $0 }
            }.filter { $0 != disk }
        }
        func nbdListeners() -> [String] {
            // /proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`; flags 00010000 = listening.
            // It lists the sockets of the reader's network namespace: in a lab, read it as each
            // agent sees it (its QEMUs run in its namespace). Unreadable (that agent is gone): the
            // invariants checked before this fail on a dead agent anyway.
            let tables = mesh.lab == nil ? ["/proc/net/unix"] : [a, b].map { "/proc/\($0.pid)/net/unix" }
            let table = tables.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }.joined(separator: "\n")
            return table.split(whereSeparator: \.isNewline).map(String.init).filter { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 8, fields[3] == "00010000" else { return false }
                let path = String(fields[7])
                return (path.contains(a.stateDirectory) || path.contains(b.stateDirectory)) && path.contains("nbd")
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        var (left, listening) = (images(), nbdListeners())
        while ContinuousClock.now < deadline, !left.isEmpty || !listening.isEmpty {
            try await Task.sleep(for: .milliseconds(200))
            (left, listening) = (images(), nbdListeners())
        }
        #expect(left.isEmpty, "\(context): images left in the storage directories: \(left)")
        #expect(listening.isEmpty, "\(context): NBD sockets still listening: \(listening)")
        #expect(FileManager.default.fileExists(atPath: disk), "\(context): the guest's image \(disk) is gone")
    }
}
