import Agent
import ControlAPI
import Foundation
import Hypervisor
import VirtualSwitch

/// `hostmesh bench network`: what a peer sees of a migration. A server VM moves round three
/// agents (b → c → a → b …) while a client VM on a pings it every 20 ms and holds a TCP
/// connection to its echo service, so the runs cover the three kinds of move: between two other
/// hosts, onto the client's host, and off it. Per run: QEMU's downtime beside the ping gap and
/// lost pings the client saw, and whether the TCP connection and its bytes survived. Target: gap
/// <= downtime + 100 ms, no TCP connection or byte lost.
public enum NetworkMigrationBenchmark {
    /// One migration's figures. JSON keys as the issue asks.
    public struct Run: Codable, Sendable {
        /// Which move: "third-host" (between two hosts the client is not on), "onto-peer-host",
        /// "off-peer-host".
        public var move: String
        /// Guest pause, STOP to RESUME, ms.
        public var downtimeMs: Int64
        /// Largest interval between two ping replies at the client across the move (from the
        /// last reading before it on), ms: the longer of the two stalls below.
        public var gapMs: Int
        /// The client's longest gap ending at or after the source QEMU's STOP (`PeerGapSplit`):
        /// the switchover's, what the target is about; -1 if not placed.
        public var switchoverGapMs: Int?
        /// The client's longest gap that ended between the migration request and the STOP: the
        /// moving guest's stall in pre-copy (`Scripts/precopy-stall.py`); -1 if not placed.
        public var precopyGapMs: Int?
        /// How long before the STOP that pre-copy gap ended, ms (nil when under 100 ms).
        public var precopyGapEndedBeforeStopMs: Int?
        /// Pings lost during the run: requests the peer sent after the run began that had no reply
        /// 3 s later (`hmtool ping`'s `PINGLOST` lines). A request sent before (the peer's first,
        /// at its boot, judged only after the run began) is not the move's.
        public var lostPings: Int
        /// Of `lostPings`, requests that never reached the moving guest (`hmtool icmpseen` in
        /// it: sequence numbers missing, net of late ones); the rest are replies lost on the way
        /// back. Nil if the guest's count could not be read (its counting restarted).
        public var requestsLost: Int?
        /// The sequence numbers of the lost pings (`PINGLOST`), and of the reply that ended each
        /// gap of 100 ms or more (`PINGGAP`, the move's among them): a lost request sent just
        /// before the gap's first held one was answered, if at all, by the source's guest as QEMU
        /// stopped it (the peer pings every 20 ms).
        public var lostPingSequences: [Int] = []
        public var gapEndSequences: [Int] = []
        /// Replies that came after the 3 s, and second replies to one request (each frame must be
        /// delivered once).
        public var latePings: Int
        public var duplicatePings: Int
        /// What each switch counted during the move (`switch.counters`, differences, only
        /// counters that changed), by host and its role in the move, e.g. "bench-b (source)".
        public var switches: [String: [String: Int64]] = [:]
        /// The moving guest's and the peer's TCP counters across the move (`hmtool tcpstat`,
        /// differences, only those that changed: `retrans`, `timeouts`, `spurious_rto`,
        /// `dsack_sent`, …): which side lost or waited for a segment.
        public var serverTCP: [String: Int] = [:]
        public var peerTCP: [String: Int] = [:]
        /// UDP datagrams this host's kernel dropped for want of receive buffer during the move
        /// (every overlay socket of the three agents is on it; other processes' count too).
        public var udpReceiveBufferErrors: Int = 0
        /// TCP connections the client had to re-open.
        public var tcpConnectionsLost: Int
        /// Echoed bytes that did not come back intact (the client checks every echo).
        public var tcpBytesLost: Int
        /// The longest the client's TCP echo waited, ms (issue 23: a retransmission timeout
        /// shows as a stall of downtime + 200 ms or more).
        public var tcpStallMs: Int
        /// The longest one echo request waited for its answer, send to answer, ms: the stall
        /// without the client's own 20 ms pause between an answer and its next request, which
        /// `tcpStallMs` includes.
        public var tcpWaitMs: Int
        /// TCP segments the client retransmitted during the run.
        public var tcpRetransmits: Int
        /// The switchover's points (`SwitchoverTrace`: QEMU's STOP and RESUME, the ports'
        /// pause, freeze and activation, ...), ms after QEMU's STOP at the source, in time order.
        public var timeline: [TimelinePoint] = []
        /// The reference beside the move: the same guest paused in place on its new host for
        /// about this move's downtime (`vm pause`, `vm resume`), the peer measured alike. What a
        /// pause alone costs the peer on this machine, where no new QEMU starts the guest. Nil
        /// when not measured (the dropping comparison).
        public var inPlace: InPlacePause?

        /// The peer's figures across a pause in place.
        public struct InPlacePause: Codable, Sendable {
            /// From the pause to the resume, ms: between the midpoints of the two control calls
            /// (each took a few ms; QEMU's `stop` and `cont` ran inside them).
            public var pauseMs: Int
            /// As the move's figures of the same names, over the pause.
            public var gapMs: Int
            public var lostPings: Int
            public var tcpStallMs: Int
            public var tcpWaitMs: Int
            public var tcpRetransmits: Int

            enum CodingKeys: String, CodingKey {
                case pauseMs = "pause_ms", gapMs = "gap_ms", lostPings = "lost_pings", tcpStallMs = "tcp_stall_ms", tcpWaitMs = "tcp_wait_ms",
                     tcpRetransmits = "tcp_retransmits"
            }
        }

        /// One point of `timeline`.
        public struct TimelinePoint: Codable, Sendable {
            public var point: String
            public var ms: Double
        }

        /// How much longer the peer saw no reply than the guest was paused, ms (target <= 100):
        /// what the network adds to QEMU's downtime.
        public var gapBeyondDowntimeMs: Int { gapMs - Int(downtimeMs) }
        /// The same for the switchover's gap alone (the pre-copy stall left out); nil when the
        /// peer's lines did not place it (never read as 0).
        public var switchoverGapBeyondDowntimeMs: Int? { switchoverGapMs.map { $0 - Int(downtimeMs) } }

        enum CodingKeys: String, CodingKey {
            case move, downtimeMs = "downtime_ms", gapMs = "gap_ms", switchoverGapMs = "switchover_gap_ms", precopyGapMs = "precopy_gap_ms",
                 precopyGapEndedBeforeStopMs = "precopy_gap_ended_before_stop_ms", lostPings = "lost_pings",
                 tcpConnectionsLost = "tcp_connections_lost", tcpBytesLost = "tcp_bytes_lost", tcpStallMs = "tcp_stall_ms", tcpWaitMs = "tcp_wait_ms",
                 tcpRetransmits = "tcp_retransmits", timeline, requestsLost = "ping_requests_lost", latePings = "late_pings",
                 duplicatePings = "duplicate_pings", switches, serverTCP = "server_tcp", peerTCP = "peer_tcp",
                 udpReceiveBufferErrors = "udp_rcvbuf_errors", inPlace = "in_place", lostPingSequences = "lost_ping_seqs",
                 gapEndSequences = "gap_end_seqs"
        }
    }

    /// Runs `runs` migrations of the server round the three hosts. `holdFrames`: the switches
    /// hold frames for the moving VM (ours, Protocol.md §8.6.1); false: they drop them (before).
    public static func run(kernel: String, initrd: String, runs: Int, holdFrames: Bool = true,
                           log: @Sendable (String) -> Void = { _ in }) async throws -> [Run] {
        let work = NSTemporaryDirectory() + "hostmesh-netbench-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let recorder = SwitchoverTimelineRecorder()
        let mesh = try await LocalMesh.start(in: work, hosts: 3, holdFrames: holdFrames, timeline: recorder)
        defer { mesh.stop() }
        try await Task.sleep(for: .milliseconds(500))
        func spec(_ name: String, ip: String, work: String) throws -> VMSpec {
            // The agent's own builder: the same MAC, address and arguments `vm create` gets.
            var options = VMSpecOptions(name: name, kernel: kernel)
            options.memoryMiB = 128
            options.initrd = initrd
            options.workload = work
            options.network = "default"
            options.ip = ip + "/24"
            return try options.spec(id: UUID().uuidString.lowercased())
        }
        let client = mesh.clients[0]
        _ = try await mesh.clients[1].call("vm.create", ControlTypes.CreateVM(spec: try spec("server", ip: "10.77.0.3", work: "heartbeat,echo:7,icmpseen:10.77.0.2,tcpstat"), start: true),
                                           as: VMInfo.self)
        try await waitFor(mesh.clients[1], "server") { $0.contains("HOSTMESH-GUEST ready") }
        var results: [Run] = []
        var at = 1
        for round in 0..<runs {
            let name = "client-\(round)"
            let clientInfo = try await client.call("vm.create", ControlTypes.CreateVM(spec: try spec(name, ip: "10.77.0.2", work: "ping:10.77.0.3,tcp:10.77.0.3:7,tcpstat"), start: true),
                                                   as: VMInfo.self)
            let before = try await waitFor(client, name) { (last($0, "TCP 10.77.0.3:7 conn=").flatMap { field($0, "ok") } ?? 0) > 20 }
            let okBefore = last(before, "TCP 10.77.0.3:7 conn=").flatMap { field($0, "ok") } ?? 0
            let pingBefore = last(before, "PING 10.77.0.3") ?? ""
            guard field(pingBefore, "judged") != nil else {
                throw ControlError.failed("the test guest is older than this benchmark (its PING lines have no judged=): rebuild it with `make guest`")
            }
            let retransBefore = last(before, "TCP 10.77.0.3:7 conn=").flatMap { field($0, "retrans") } ?? 0
            let target = (at + 1) % 3
            let move = target == 0 ? "onto-peer-host" : at == 0 ? "off-peer-host" : "third-host"
            let roles = (0..<3).map { host in
                "bench-\(Character(UnicodeScalar(97 + host)!)) (" + [host == at ? "source" : nil, host == target ? "destination" : nil, host == 0 ? "peer" : nil]
                    .compactMap { $0 }.joined(separator: ", ") + ")"
            }
            let seenBefore = try await waitFor(mesh.clients[at], "server") { last($0, "ICMPSEEN 10.77.0.2") != nil }
            let countersBefore = try await switchCounters(mesh.clients)
            let udpBefore = udpReceiveBufferErrors()
            // The client's gap lines timed on the host's clock, to place them against QEMU's STOP.
            let clientLines = try ConsoleLineClock.pinger(ofQEMU: clientInfo.pid, ip: "10.77.0.3")
            defer { clientLines.stop() }
            _ = recorder.take()
            let requestedAt = Date().timeIntervalSince1970
            let report = try await mesh.clients[at].call("migrate", ControlTypes.Migrate(vm: "server", to: .address(HostPort(host: "127.0.0.1", port: mesh.ports[target])), settings: MigrationSettings()),
                                                         as: MigrationReport.self)
            at = target
            // Every request sent until now judged at the peer (3 s after it was sent) and at the
            // server (150 numbers on), and the TCP echo well past the move.
            let sentByNow = try await waitFor(client, name) { _ in true }
            let sentAtEnd = last(sentByNow, "PING 10.77.0.3").flatMap { field($0, "sent") } ?? 0
            let after = try await waitFor(client, name) {
                (last($0, "TCP 10.77.0.3:7 conn=").flatMap { field($0, "ok") } ?? 0) > okBefore + 40
                    && (last($0, "PING 10.77.0.3").flatMap { field($0, "judged") } ?? 0) >= sentAtEnd
            }
            let seenAfter = try await waitFor(mesh.clients[at], "server") { (last($0, "ICMPSEEN 10.77.0.2").flatMap { field($0, "high") } ?? 0) >= sentAtEnd + 150 }
            let countersAfter = try await switchCounters(mesh.clients)
            let udpAfter = udpReceiveBufferErrors()
            let ping = last(after, "PING 10.77.0.3") ?? ""
            let tcp = last(after, "TCP 10.77.0.3:7 conn=") ?? ""
            let errors = after.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("TCP 10.77.0.3:7 error") }.count
            func delta(_ name: String) -> Int { (field(ping, name) ?? 0) - (field(pingBefore, name) ?? 0) }
            let lost = lostPings(before, after)
            var run = Run(move: move, downtimeMs: report.downtimeMs, gapMs: gapSince(before, in: after, ip: "10.77.0.3"),
                          lostPings: lost.count, requestsLost: requestsMissing(seenBefore, seenAfter), latePings: delta("late"), duplicatePings: delta("dup"),
                          tcpConnectionsLost: (field(tcp, "conn") ?? 1) - 1, tcpBytesLost: errors,
                          tcpStallMs: field(tcp, "maxgap_ms") ?? -1, tcpWaitMs: field(tcp, "maxwait_ms") ?? -1, tcpRetransmits: (field(tcp, "retrans") ?? 0) - retransBefore,
                          timeline: [])
            run.lostPingSequences = lost
            run.gapEndSequences = sequencesSince(before, in: after, "PINGGAP 10.77.0.3 ")
            clientLines.stop()
            let points = recorder.take()
            run.timeline = SwitchoverTimelineRecorder.describe(points, from: "source-qemu-stop").map { Run.TimelinePoint(point: $0.name, ms: ($0.ms * 10).rounded() / 10) }
            if let stopAt = points.first(where: { $0.name == "source-qemu-stop" })?.at {
                let split = PeerGapSplit(lines: clientLines.lines, ip: "10.77.0.3", requestedAt: requestedAt, stopAt: stopAt, downtimeMs: Double(report.downtimeMs))
                run.switchoverGapMs = split.switchoverGapMs
                run.precopyGapMs = split.precopyGapMs
                run.precopyGapEndedBeforeStopMs = split.precopyGapEndedBeforeStopMs
            }
            run.serverTCP = tcpChanges(seenBefore, seenAfter)
            run.peerTCP = tcpChanges(before, after)
            run.udpReceiveBufferErrors = udpAfter - udpBefore
            for host in 0..<3 {
                run.switches[roles[host]] = counterChanges(countersBefore[host], countersAfter[host])
            }
            log("run \(round + 1) (\(move), \(holdFrames ? "holding" : "dropping")): downtime \(run.downtimeMs) ms, ping gap \(run.gapMs) ms "
                + "(at the switchover \(run.switchoverGapMs.map { "\($0) ms" } ?? "not placed"), in pre-copy \(run.precopyGapMs.map { "\($0) ms" } ?? "none placed")"
                + (run.precopyGapEndedBeforeStopMs.map { ", ended \($0) ms before QEMU's STOP" } ?? "") + "), "
                + "lost pings \(run.lostPings) (requests lost on the way \(run.requestsLost.map(String.init) ?? "?"), late \(run.latePings), duplicated \(run.duplicatePings)), "
                + "TCP stall \(run.tcpStallMs) ms (wait \(run.tcpWaitMs) ms), retransmits \(run.tcpRetransmits), "
                + "TCP connections lost \(run.tcpConnectionsLost), TCP errors \(run.tcpBytesLost)")
            log(timelineLine(run.timeline))
            if !run.lostPingSequences.isEmpty {
                log("  pings lost (sent since the run began): seq \(run.lostPingSequences.map(String.init).joined(separator: ", ")); gaps of 100 ms or more ended at seq "
                    + run.gapEndSequences.map(String.init).joined(separator: ", "))
            }
            log("  TCP counters that changed: moving guest " + describe(run.serverTCP) + "; peer " + describe(run.peerTCP)
                + "; UDP receive-buffer drops machine-wide (every process) \(run.udpReceiveBufferErrors)")
            for (host, changed) in run.switches.sorted(by: { $0.key < $1.key }) {
                let shown = changed.filter { !$0.key.hasPrefix("overlay.datagrams") && $0.key != "overlay-frames-in" && $0.key != "overlay-frames-out" }
                log("  \(host): " + (shown.isEmpty ? "no holding, forwarding or drops" : shown.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
            }
            if holdFrames {
                let inPlace = try await pauseInPlace(on: mesh.clients[at], peer: client, peerVM: name, forMs: max(Int(run.downtimeMs), 20))
                run.inPlace = inPlace
                log("  in place on \(roles[at].split(separator: " ")[0]) for \(inPlace.pauseMs) ms (no move): ping gap \(inPlace.gapMs) ms, lost pings \(inPlace.lostPings), "
                    + "TCP stall \(inPlace.tcpStallMs) ms (wait \(inPlace.tcpWaitMs) ms), retransmits \(inPlace.tcpRetransmits)")
            }
            results.append(run)
            _ = try await client.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
        }
        _ = try await mesh.clients[at].call("vm.stop", ControlTypes.VMReference(vm: "server"), as: VMInfo.self)
        return results
    }

    /// Pauses the server in place on `agent` for about `forMs` and reads what the peer saw, as
    /// for a move (the server stays where it is).
    static func pauseInPlace(on agent: ControlClient, peer: ControlClient, peerVM: String, forMs: Int) async throws -> Run.InPlacePause {
        let prefix = "TCP 10.77.0.3:7 conn="
        // The once-a-second summaries (not the lines a stall prints each second, nor one half written).
        func summaries(_ console: String) -> [String] {
            console.split(whereSeparator: \.isNewline).filter { $0.hasPrefix(prefix) && $0.contains(" maxgap_ms=") && $0.contains(" wwait_ms=") }.map(String.init)
        }
        let before = try await waitFor(peer, peerVM) { _ in true }
        let tcpBefore = summaries(before).last ?? ""
        guard field(tcpBefore, "wgap_ms") != nil else {
            throw ControlError.failed("the test guest is older than this benchmark (its TCP lines have no wgap_ms=): rebuild it with `make guest`")
        }
        let clock = ContinuousClock()
        let pauseCalled = clock.now
        _ = try await agent.call("vm.pause", ControlTypes.VMReference(vm: "server"), as: VMInfo.self)
        let paused = clock.now, halfCall = (paused - pauseCalled) / 2
        // The resume's call is taken to last as long as the pause's: its midpoint lands `forMs`
        // after the pause's when it starts `forMs` after the pause's start.
        try await Task.sleep(until: pauseCalled + .milliseconds(forMs))
        let resumeCalled = clock.now
        _ = try await agent.call("vm.resume", ControlTypes.VMReference(vm: "server"), as: VMInfo.self)
        let resumed = clock.now
        let pauseMs = Int(((resumeCalled - pauseCalled) + (resumed - resumeCalled) / 2 - halfCall) / .milliseconds(1))
        let okBefore = field(tcpBefore, "ok") ?? 0
        let sentByNow = last(try await waitFor(peer, peerVM) { _ in true }, "PING 10.77.0.3").flatMap { field($0, "sent") } ?? 0
        let after = try await waitFor(peer, peerVM) {
            (last($0, prefix).flatMap { field($0, "ok") } ?? 0) > okBefore + 40
                && (last($0, "PING 10.77.0.3").flatMap { field($0, "judged") } ?? 0) >= sentByNow
        }
        let tcpLines = summaries(after).dropFirst(summaries(before).count)
        let tcpAfter = tcpLines.last ?? tcpBefore
        return Run.InPlacePause(pauseMs: pauseMs, gapMs: gapSince(before, in: after, ip: "10.77.0.3"),
                                lostPings: lostPings(before, after).count,
                                tcpStallMs: tcpLines.compactMap { field($0, "wgap_ms") }.max() ?? -1,
                                tcpWaitMs: tcpLines.compactMap { field($0, "wwait_ms") }.max() ?? -1,
                                tcpRetransmits: (field(tcpAfter, "retrans") ?? 0) - (field(tcpBefore, "retrans") ?? 0))
    }

    /// The `seq=` (or `name=`) of the lines starting with `prefix` printed after `before` was read.
    static func sequencesSince(_ before: String, in after: String, _ prefix: String, field name: String = "seq") -> [Int] {
        let lines = { (text: String) in text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix(prefix) } }
        return lines(after).dropFirst(lines(before).count).compactMap { field(String($0), name) ?? field(String($0), "seq") }
    }

    /// The peer's pings lost between two readings of its console: `PINGLOST` request indexes
    /// printed since `before`, of requests sent since its last summary (numbered from 0: those
    /// below its `sent` left earlier, such as the very first, at the peer's boot).
    static func lostPings(_ before: String, _ after: String) -> [Int] {
        let sentBefore = last(before, "PING 10.77.0.3").flatMap { field($0, "sent") } ?? 0
        return sequencesSince(before, in: after, "PINGLOST 10.77.0.3 ", field: "index").filter { $0 >= sentBefore }
    }

    /// The differences of the `TCPSTAT` counters between the last such lines of two readings of
    /// one guest's console, those that changed.
    static func tcpChanges(_ before: String, _ after: String) -> [String: Int] {
        guard let first = last(before, "TCPSTAT "), let second = last(after, "TCPSTAT ") else { return [:] }
        var changes: [String: Int] = [:]
        for name in ["in", "out", "retrans", "timeouts", "spurious_rto", "dsack_sent", "dsack_recv", "delayed_ack_lost"] {
            let difference = (field(second, name) ?? 0) - (field(first, name) ?? 0)
            if difference != 0, name != "in", name != "out" { changes[name] = difference }
        }
        return changes
    }

    static func describe(_ changes: [String: Int]) -> String {
        changes.isEmpty ? "none" : changes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// This host's UDP receive-buffer drops so far (`/proc/net/snmp`, `Udp: RcvbufErrors`); 0 if unreadable.
    static func udpReceiveBufferErrors() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/snmp", encoding: .utf8) else { return 0 }  // not Linux: nothing to add
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("Udp: ") }
        guard lines.count >= 2, let index = lines[0].split(separator: " ").firstIndex(of: "RcvbufErrors") else { return 0 }
        let values = lines[1].split(separator: " ")
        return index < values.count ? Int(values[index]) ?? 0 : 0
    }

    /// Each agent's switch counters (`switch.counters`), in `clients`' order.
    static func switchCounters(_ clients: [ControlClient]) async throws -> [[String: UInt64]] {
        var all: [[String: UInt64]] = []
        for client in clients { all.append(try await client.call("switch.counters", Empty(), as: ControlTypes.SwitchCounters.self).counters) }
        return all
    }

    /// The counters of one switch that changed between two readings, by how much.
    static func counterChanges(_ before: [String: UInt64], _ after: [String: UInt64]) -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: after.compactMap { name, count -> (String, Int64)? in
            let difference = Int64(count) - Int64(before[name] ?? 0)
            return difference == 0 ? nil : (name, difference)
        })
    }

    /// A move's timeline as one log line: the guest's frames after the resume only the first of
    /// each kind (the held pings' answers would fill the line).
    static func timelineLine(_ timeline: [Run.TimelinePoint]) -> String {
        var kindsShown = Set<String>()
        let shown = timeline.filter { point in
            guard point.point.hasPrefix("destination-guest-frame-") else { return true }
            return kindsShown.insert(String(point.point.split(separator: "-").dropFirst(4).joined(separator: "-"))).inserted
        }
        return "  timeline (ms after QEMU's STOP): " + shown.map { "\($0.point) \(String(format: "%+.1f", $0.ms))" }.joined(separator: ", ")
    }

    /// Echo requests from the peer that never reached the server between two of its
    /// `ICMPSEEN` lines (missing net of late ones); nil if its counting restarted between them.
    static func requestsMissing(_ before: String, _ after: String) -> Int? {
        guard let first = last(before, "ICMPSEEN 10.77.0.2"), let second = last(after, "ICMPSEEN 10.77.0.2"),
              field(first, "epoch") == field(second, "epoch") else { return nil }
        func net(_ line: String) -> Int { (field(line, "missing") ?? 0) - (field(line, "late") ?? 0) }
        return net(second) - net(first)
    }

    @discardableResult
    static func waitFor(_ agent: ControlClient, _ vm: String, timeout: Duration = .seconds(60), _ ready: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = try await agent.call("vm.console", ControlTypes.Console(vm: vm, lines: 100_000), as: ControlTypes.Text.self).text
            if ready(text) { return text }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ControlError.failed("\(vm) did not reach the expected state within \(timeout)")
    }

    /// The longest gap between two ping replies that ended after `before` was read (the
    /// `wgap_ms` of the `PING <ip>` lines printed since), ms; -1 if there is no such line. The
    /// lines' `maxgap_ms` is the longest of the pinger's whole life, its own start included.
    static func gapSince(_ before: String, in after: String, ip: String, field name: String = "wgap_ms") -> Int {
        let lines = { (text: String) in text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PING \(ip) ") } }
        let fresh = lines(after).dropFirst(lines(before).count)
        return fresh.compactMap { field(String($0), name) }.max() ?? -1
    }

    /// min / median / max of the values a move placed, and how many it did not (never read as 0).
    public static func placedSpread(_ values: [Int?]) -> String {
        let placed = values.compactMap { $0 }
        let unplaced = values.count - placed.count
        let spread = Spread(placed).map { "\($0.min) / \($0.median) / \($0.max)" } ?? "-"
        return unplaced > 0 ? spread + " (\(unplaced) not placed)" : spread
    }

    static func last(_ console: String, _ prefix: String) -> String? {
        console.split(whereSeparator: \.isNewline).last { $0.hasPrefix(prefix) }.map(String.init)
    }

    static func field(_ line: String, _ name: String) -> Int? {
        line.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
    }

    /// The overlay's echo throughput to a real guest beside the same through one switch.
    public static func throughput(kernel: String, initrd: String, seconds: Int) async throws -> NetworkBenchmark.Result {
        let work = NSTemporaryDirectory() + "hostmesh-netbench-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var options = NetworkBenchmark.Options(directory: work)
        options.duration = .seconds(seconds)
        options.pingPhase = .seconds(max(2, seconds))
        return try await NetworkBenchmark.measure(launch: { request in
            let nic = VMSpec.NIC(id: "eth0", mac: request.mac.description,
                                 attachment: .dgram(localPath: request.attachment.vmSocketPath, remotePath: request.attachment.switchSocketPath))
            let spec = VMSpec(id: request.name, name: request.name, memoryMiB: 128, nics: [nic],
                              boot: .kernel(path: kernel, initrd: initrd, commandLine: "console=ttyS0 quiet"),
                              accelerator: .auto, extraKernelArguments: ["hm.ip=\(request.ipWithPrefix)", "hm.work=\(request.work)"])
            return BenchGuest(process: try await VMProcess.launch(spec: spec, directory: VMRuntimeDirectory(path: request.directory)))
        }, options: options)
    }

    struct BenchGuest: NetworkBenchmark.Guest {
        let process: VMProcess
        func console() async -> String { process.directory.readConsole() }
        func stop() async {
            process.kill()
            _ = await process.stop(quitGrace: .milliseconds(200))
        }
    }
}
