import Agent
import ControlAPI
import Foundation
import Hypervisor
import LinkEmulator
import Testing

/// Live migration between two sites 150 ms apart at 250 Mbit/s (issue "Long distance"): agents in
/// lab namespaces on two bridges joined only by the frame-level link emulator, so the migration
/// stream is one end-to-end TCP connection through the delay, with real windows. The figures
/// (rate, link use) are printed; `hostmesh bench migrate --rtt-ms` is where they are judged.
@Suite(.serialized, .timeLimit(.minutes(4)),
       .enabled(if: Lab.available, "needs root and iproute2 (network namespaces)"),
       .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct DistanceMigrationTests {
    let e2e = MigrationEndToEndTests()
    let membership = MembershipProcessTests()
    static let rttMs = 150, rateMbit = 250.0

    func report(_ what: String, _ report: MigrationReport, rttMs: Int = Self.rttMs) {
        let use = report.mbPerSecond * 8 / Self.rateMbit
        print("distance \(rttMs) ms, \(Self.rateMbit) Mbit/s: \(what): \(report.transferredBytes) B in \(report.totalMs) ms, "
              + "\(String(format: "%.1f", report.mbPerSecond)) MB/s (link use \(String(format: "%.2f", use))), downtime \(report.downtimeMs) ms, "
              + "streams \(report.streams), phases \(report.phasesMs ?? [:])")
    }

    /// Agents on lab hosts 1...hosts; the last host is site B, the others site A, joined by the
    /// frame link; every agent runs the WAN membership profile and all see each other alive.
    /// Tear down with `mesh.tearDown()` then `link.stop()`.
    func sites(hosts: Int, rttMs: Int = Self.rttMs) async throws -> (mesh: TestMesh, link: FrameLink, agents: [AgentProcess]) {
        let lab = try Lab(hosts: hosts, siteBFrom: hosts)
        let link = try lab.joinSites(LinkProfile(rtt: .milliseconds(rttMs), rateMbit: Self.rateMbit))
        let mesh = try TestMesh(lab: lab)
        do {
            let wan = ["--membership-profile", "wan", "--wan-rtt-ms", "\(rttMs)"]
            var agents = [try await mesh.start("node-a", on: 1, arguments: wan)]
            for host in 2...hosts {
                let id = "node-" + String(UnicodeScalar(UInt8(96 + host)))
                agents.append(try await mesh.start(id, on: host, arguments: wan + ["--join", agents[0].address]))
            }
            try await membership.eventually(agents, "all alive everywhere, across the distance") { rows in
                rows.count == hosts && rows.allSatisfy { $0.status == "alive" && $0.channel != nil }
            }
            return (mesh, link, agents)
        } catch {
            mesh.tearDown()
            link.stop()
            throw error
        }
    }

    @Test func anIdleAndADirtyingGuestCrossTheDistanceThereAndBack() async throws {
        let (mesh, link, agents) = try await sites(hosts: 2)
        defer {
            mesh.tearDown()
            link.stop()
        }
        let (a, b) = (agents[0], agents[1])

        // A 512 MiB idle guest, there and back: the heartbeat goes on, no reboot.
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("idle", memory: 512), start: true), as: VMInfo.self)
        let (boot, before) = try await e2e.heartbeat(a, "idle", after: 2)
        let progress = MigrationEndToEndTests.ProgressLog()
        let there = try await e2e.migrate("idle", from: a, to: b, log: progress)
        report("512 MiB idle guest A -> B", there)
        // Progress says the round trip the stream's connection measured: 150 ms of emulated
        // delay cannot be measured shorter (issue item 6).
        let rtts = progress.all.filter { $0.phase == "transfer" }.compactMap(\.rttMs)
        print("distance: round trips in progress: \(Set(rtts.map { Int($0) }).sorted()) ms")
        #expect(!rtts.isEmpty && rtts.allSatisfy { $0 >= 140 }, "\(rtts)")
        let (bootOnB, onB) = try await e2e.heartbeat(b, "idle", after: before)
        #expect(bootOnB == boot)
        let back = try await e2e.migrate("idle", from: b, to: a)
        report("512 MiB idle guest B -> A", back)
        let (bootBack, _) = try await e2e.heartbeat(a, "idle", after: onB)
        #expect(bootBack == boot)
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "idle"), as: VMInfo.self)

        // A guest rewriting 5 MB/s of its memory (a fifth of the link) converges across the distance.
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("dirty", work: "heartbeat,dirty:5", memory: 256), start: true),
                                     as: VMInfo.self)
        let (dirtyBoot, dirtyBefore) = try await e2e.heartbeat(a, "dirty", after: 3)
        let dirty = try await e2e.migrate("dirty", from: a, to: b)
        report("256 MiB guest dirtying 5 MB/s A -> B", dirty)
        let (dirtyOnB, _) = try await e2e.heartbeat(b, "dirty", after: dirtyBefore)
        #expect(dirtyOnB == dirtyBoot)
        #expect(!(try await a.control.call("vm.list", Empty(), as: [VMInfo].self)).contains { $0.name == "dirty" })

        // A guest rewriting a 160 MB working set at 60 MB/s, twice what the link carries, cannot
        // converge without slowing it (throttling off, no post-copy; the ladder's longest downtime,
        // 2 s, holds less than 50 MB here): the migration ends with the figures that say why, and
        // the guest goes on at its source.
        _ = try await b.control.call("vm.stop", ControlTypes.VMReference(vm: "dirty"), as: VMInfo.self)
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("hot", work: "heartbeat,dirty:60", memory: 256, extra: ["hm.dirtyset=160"]), start: true),
                                     as: VMInfo.self)
        let (hotBoot, hotBefore) = try await e2e.heartbeat(b, "hot", after: 3)
        let error: any Error
        do {
            var unthrottled = MigrationSettings()
            unthrottled.armAutoConverge = false
            _ = try await e2e.migrate("hot", from: b, to: a, settings: unthrottled)
            Issue.record("a guest dirtying twice the link's rate migrated")
            return
        } catch let failure {
            error = failure
        }
        print("distance: a guest dirtying 60 MB/s: \(error)")
        #expect("\(error)".contains("the link moved") && "\(error)".contains("the guest dirtied"), "\(error)")
        let (hotAfter, _) = try await e2e.heartbeat(b, "hot", after: hotBefore)
        #expect(hotAfter == hotBoot)

        let ab = link.counters(aToB: true)
        print("distance link A -> B: \(ab.deliveredBytes) B in \(ab.delivered) frames, \(ab.droppedQueueFull) dropped at the queue")
    }

    /// One QEMU stream striped across secure channels (Protocol.md §6.14), against one channel,
    /// same guest, same link, there and back: both carry the guest whole (the heartbeat goes on, no
    /// reboot), the striped one on as many channels as the round trip calls for. Progress shows
    /// link use over the configured rate. The figures are printed (the benchmark judges them).
    @Test func aStripedStreamAndASingleOneBothCarryTheGuest() async throws {
        // One distance and one move each way keep the suite short; the figures at 150 and 250 ms
        // with several rounds are the benchmark's and the README's.
        let rttMs = 150
        let (mesh, link, agents) = try await sites(hosts: 2, rttMs: rttMs)
        defer {
            mesh.tearDown()
            link.stop()
        }
        let (a, b) = (agents[0], agents[1])
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("idle", memory: 512), start: true), as: VMInfo.self)
        var (boot, heartbeat) = try await e2e.heartbeat(a, "idle", after: 2)
        var single = MigrationSettings(), striped = MigrationSettings()
        single.linkMbit = Int64(Self.rateMbit)
        striped.linkMbit = Int64(Self.rateMbit)
        single.stripes = 1
        // `striped` leaves `stripes` out: at distance the default is as many as the round trip calls for.
        var hosts = (a, b)
        for (round, settings) in [striped, single].enumerated() {
            let progress = MigrationEndToEndTests.ProgressLog()
            let moved = try await hosts.0.control.call("migrate", ControlTypes.Migrate(vm: "idle", to: .address(try HostPort(parsing: hosts.1.address)),
                                                                                       settings: settings), as: MigrationReport.self) { progress.add($0) }
            report("512 MiB idle guest, round \(round + 1), \(settings.stripes == 1 ? "one channel" : "striped")", moved, rttMs: rttMs)
            // One stripe per 20 ms of round trip, at most what the stream's buffer holds at 1 MiB each
            // (Protocol.md §6.14): 8 at 150 ms. The round trip is the one the agents measured (their
            // hello or the checklist): a loaded host's handshake can read a little over 160 ms (9).
            #expect(settings.stripes == 1 ? moved.streams == 1 : (7...10).contains(moved.streams), "\(moved.streams)")
            let uses = progress.all.filter { $0.phase == "transfer" }.compactMap(\.linkUse)
            print("distance: link use in progress: \(uses.map { String(format: "%.2f", $0) })")
            #expect(!uses.isEmpty && uses.allSatisfy { $0 >= 0 })
            let (bootAfter, beat) = try await e2e.heartbeat(hosts.1, "idle", after: heartbeat)
            #expect(bootAfter == boot)
            (boot, heartbeat) = (bootAfter, beat)
            hosts = (hosts.1, hosts.0)
        }
    }

    /// A peer VM at the source site keeps its pings and its TCP connection while the VM it talks to
    /// moves to the far site (issue item 5). The gap it saw is printed beside the downtime and the
    /// round trip; the target (gap <= downtime + 1 RTT + 50 ms) is judged by a benchmark, not here.
    @Test func aPeerAtTheSourceSiteKeepsPingAndTCPWhileTheVMMovesToTheFarSite() async throws {
        let net = NetworkIdentityTests()
        let (mesh, link, agents) = try await sites(hosts: 3)
        defer {
            mesh.tearDown()
            link.stop()
        }
        let (a, b, c) = (agents[0], agents[1], agents[2])
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("server", ip: "10.77.0.3", work: "heartbeat,echo:7"), start: true),
                                     as: VMInfo.self)
        _ = try await net.line(b, "server", "HOSTMESH-GUEST ready")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("client", ip: "10.77.0.2", work: "ping:10.77.0.3,tcp:10.77.0.3:7"), start: true),
                                     as: VMInfo.self)
        let before = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=") { net.field($0, "ok") ?? 0 > 20 }
        #expect(net.field(before, "conn") == 1)
        let pingBefore = try await net.line(a, "client", "PING 10.77.0.3")

        let moved = try await b.control.call("migrate", ControlTypes.Migrate(vm: "server", to: .host("node-c"), settings: MigrationSettings()),
                                             as: MigrationReport.self)
        report("128 MiB echo server, site A -> site B, peer at site A", moved)
        // Across the distance the peer's echoes now take a round trip each: wait for 10 more.
        let justAfter = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=")
        let okAfterMove = net.field(justAfter, "ok") ?? 0
        let after = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=", timeout: .seconds(60)) { net.field($0, "ok") ?? 0 > okAfterMove + 10 }
        let pingAfter = try await net.line(a, "client", "PING 10.77.0.3")
        let console = try await net.console(a, "client")
        let gaps = console.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PINGGAP") || $0.hasPrefix("TCPGAP") }
        print("distance: peer at site A during the move: \(pingBefore) -> \(pingAfter); \(after); gaps: \(gaps)")
        #expect(net.field(after, "conn") == 1) // the same TCP connection: it survived the move across the distance
        #expect(!console.contains("TCP 10.77.0.3:7 error")) // no mismatch, no loss
        #expect(try await c.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["server"])
    }
}
