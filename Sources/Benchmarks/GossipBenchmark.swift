public import Membership
public import MeshSimulator
import Foundation
import MeshTime
import MeshWire

/// One row of the gossip benchmark (`hostmesh bench gossip`), for one mesh size.
/// JSON keys follow the issues: `members`, `first_suspect_s`, `all_dead_s`, `join_all_s`,
/// `bytes_per_member_s`, `revocation_all_s`. A time is `null` when the event did not happen
/// within the run.
public struct GossipBenchmarkRow: Codable, Sendable, Equatable {
    /// Members in the mesh before the crash.
    public var members: Int
    /// Seconds from the crash to the first member suspecting the crashed one.
    public var firstSuspectSeconds: Double?
    /// Seconds from the crash until every live member marked it dead.
    public var allDeadSeconds: Double?
    /// Seconds from a new member's join until every member knew it as alive.
    public var joinAllSeconds: Double?
    /// Gossip (UDP) bytes sent per member per second in steady state, as on the wire
    /// (encoded datagram + 40-byte AEAD overhead). Push-pull over the secure channel is not
    /// included.
    public var bytesPerMemberPerSecond: Double
    /// Seconds from a revocation list published at one member until every live member held it
    /// (gossip and push-pull, as the agents run them).
    public var revocationAllSeconds: Double?
    /// Gossip bytes per member per second from the crash until every member knew the joiner
    /// (suspicions, deaths, a join: signed claims being disseminated), as on the wire.
    public var churnBytesPerMemberPerSecond: Double?
    /// The same mesh with unsigned claims (gossip before Protocol.md §4.16), same seed: the
    /// reference the signed figures are compared with.
    public var unsigned: UnsignedFigures?
    /// With metadata churn: every member changed its metadata once per this many seconds, all
    /// through the run (an agent gossips a significant capacity change at most every 3 s).
    public var metadataEverySeconds: Double?

    /// `bytes_per_member_s` and `churn_bytes_per_member_s` of the same run with unsigned claims.
    public struct UnsignedFigures: Codable, Sendable, Equatable {
        /// Steady-state gossip bytes per member per second, unsigned.
        public var bytesPerMemberPerSecond: Double
        /// Churn-phase gossip bytes per member per second, unsigned.
        public var churnBytesPerMemberPerSecond: Double?

        enum CodingKeys: String, CodingKey {
            case bytesPerMemberPerSecond = "bytes_per_member_s"
            case churnBytesPerMemberPerSecond = "churn_bytes_per_member_s"
        }
    }

    enum CodingKeys: String, CodingKey {
        case members
        case firstSuspectSeconds = "first_suspect_s"
        case allDeadSeconds = "all_dead_s"
        case joinAllSeconds = "join_all_s"
        case bytesPerMemberPerSecond = "bytes_per_member_s"
        case revocationAllSeconds = "revocation_all_s"
        case churnBytesPerMemberPerSecond = "churn_bytes_per_member_s"
        case unsigned
        case metadataEverySeconds = "metadata_every_s"
    }

    /// Creates a row.
    public init(
        members: Int, firstSuspectSeconds: Double?, allDeadSeconds: Double?, joinAllSeconds: Double?,
        bytesPerMemberPerSecond: Double, revocationAllSeconds: Double? = nil, churnBytesPerMemberPerSecond: Double? = nil
    ) {
        self.churnBytesPerMemberPerSecond = churnBytesPerMemberPerSecond
        self.members = members
        self.firstSuspectSeconds = firstSuspectSeconds
        self.allDeadSeconds = allDeadSeconds
        self.joinAllSeconds = joinAllSeconds
        self.bytesPerMemberPerSecond = bytesPerMemberPerSecond
        self.revocationAllSeconds = revocationAllSeconds
    }
}

/// The benchmark's JSON document: `{"rows": [...]}`.
public struct GossipBenchmarkReport: Codable, Sendable, Equatable {
    /// One row per mesh size.
    public var rows: [GossipBenchmarkRow]

    /// Creates a report.
    public init(rows: [GossipBenchmarkRow]) {
        self.rows = rows
    }
}

/// Measures failure detection, join dissemination and gossip traffic on the simulator.
public enum GossipBenchmark {
    /// The mesh sizes of the standard run.
    public static let standardMemberCounts = [10, 100, 1000]

    /// Runs `measure` for each size, with the seed offset by the size: with signed claims (as
    /// the agents run), and again unsigned for the traffic reference (`row.unsigned`).
    public static func run(
        memberCounts: [Int] = standardMemberCounts, seed: UInt64 = 0x60_5519,
        settings: MembershipSettings = MembershipSettings(), network: SimulatedNetwork = SimulatedNetwork(),
        metadataEvery: Duration? = nil
    ) -> [GossipBenchmarkRow] {
        memberCounts.map { members in
            var row = measure(members: members, seed: seed &+ UInt64(members), settings: settings, network: network, metadataEvery: metadataEvery)
            let reference = measure(
                members: members, seed: seed &+ UInt64(members), settings: settings, network: network, signedClaims: false,
                metadataEvery: metadataEvery)
            row.unsigned = GossipBenchmarkRow.UnsignedFigures(
                bytesPerMemberPerSecond: reference.bytesPerMemberPerSecond,
                churnBytesPerMemberPerSecond: reference.churnBytesPerMemberPerSecond)
            return row
        }
    }

    /// One mesh of `members` converged members:
    /// 1. 10 s warm-up (start-up announcements drain), then 30 s of steady state: bytes sent;
    /// 2. one member crashes: time to the first suspicion and until every live member marks it
    ///    dead (at most 120 s);
    /// 3. a new member joins through a random live member: time until every live member knows
    ///    it (at most 60 s);
    /// 4. a revocation list (one entry, about 180 bytes as signed) is published at one member:
    ///    time until every live member holds it (at most 60 s).
    ///
    /// With `signedClaims` every member signs its claims and checks the others' (§4.16, the
    /// simulator's 64-byte stand-in signatures). With `metadataEvery` every member changes its
    /// metadata (its load, as a capacity refresh does) once per that period, through every phase.
    public static func measure(
        members: Int, seed: UInt64, settings: MembershipSettings = MembershipSettings(),
        network: SimulatedNetwork = SimulatedNetwork(), signedClaims: Bool = true, metadataEvery: Duration? = nil
    ) -> GossipBenchmarkRow {
        precondition(members >= 3, "the benchmark needs at least 3 members")  // programmer error
        // A period shorter than a nanosecond per member would never move the next change on.
        precondition(metadataEvery.map { $0 / members > .zero } ?? true, "metadataEvery is too short for \(members) members")  // programmer error
        let simulation = Simulation(members: members, settings: settings, network: network, seed: seed, signedClaims: signedClaims)
        var churn = metadataEvery.map { MetadataChurn(period: $0, members: members, start: simulation.now) }
        var finished = false
        /// Runs to `end` (or until an observer marks the phase finished), changing metadata on the way.
        func advance(until end: MeshInstant) {
            finished = false
            guard churn != nil else { return simulation.run(until: end) }
            while !finished, simulation.now < end {
                let step = min(end, churn!.next)
                simulation.run(until: step)
                if !finished, simulation.now >= churn!.next { churn!.change(simulation) }
            }
        }
        advance(until: simulation.now + .seconds(10))
        let bytesBefore = totalBytesSent(simulation)
        let steadySeconds = 30.0
        advance(until: simulation.now + .seconds(30))
        let bytesPerMemberPerSecond = Double(totalBytesSent(simulation) - bytesBefore) / Double(members) / steadySeconds

        let victim = members / 2
        let crashedAt = simulation.now
        var firstSuspect: MeshInstant?
        var deadCount = 0
        var allDead: MeshInstant?
        let joiner = members
        var joinedAt: MeshInstant?
        var knowJoiner = 0
        var allKnowJoiner: MeshInstant?
        simulation.observeStatusChanges { event in
            if event.subject == victim, joinedAt == nil {
                if event.change.member.status == .suspect, firstSuspect == nil { firstSuspect = event.time }
                if event.change.member.status == .dead {
                    deadCount += 1
                    if deadCount == members - 1 {
                        allDead = event.time
                        finished = true
                        simulation.stop()
                    }
                }
            } else if event.subject == joiner, event.change.previousStatus == nil, event.change.member.status == .alive {
                knowJoiner += 1
                if knowJoiner == members - 1 {
                    allKnowJoiner = event.time
                    finished = true
                    simulation.stop()
                }
            }
        }
        let churnBytesBefore = totalBytesSent(simulation)
        simulation.crash(victim)
        advance(until: crashedAt + .seconds(120))

        var seedMember = (victim + 1) % members
        if !simulation.isRunning(seedMember) { seedMember = 0 }
        joinedAt = simulation.now
        simulation.addMember(joiningThrough: [seedMember])
        churn?.members += 1
        advance(until: simulation.now + .seconds(60))
        let churnSeconds = (simulation.now - crashedAt).inSeconds
        let churnBytes = churnSeconds > 0
            ? Double(totalBytesSent(simulation) - churnBytesBefore) / Double(members) / churnSeconds : nil

        let live = (0..<simulation.memberCount).filter { simulation.isRunning($0) }
        let notice = revocationNotice()
        var holding = Set<Int>()
        var allHold: MeshInstant?
        let publishedAt = simulation.now
        simulation.observeRevocations { member, learnt, time in
            guard learnt == notice, allHold == nil else { return }
            holding.insert(member)
            if holding.count == live.count {
                allHold = time
                finished = true
                simulation.stop()
            }
        }
        simulation.publishRevocation(live[live.count / 3], notice)
        advance(until: publishedAt + .seconds(60))

        var row = GossipBenchmarkRow(
            members: members,
            firstSuspectSeconds: firstSuspect.map { ($0 - crashedAt).inSeconds },
            allDeadSeconds: allDead.map { ($0 - crashedAt).inSeconds },
            joinAllSeconds: joinedAt.flatMap { start in allKnowJoiner.map { ($0 - start).inSeconds } },
            bytesPerMemberPerSecond: bytesPerMemberPerSecond,
            revocationAllSeconds: allHold.map { ($0 - publishedAt).inSeconds }, churnBytesPerMemberPerSecond: churnBytes)
        row.metadataEverySeconds = metadataEvery?.inSeconds
        return row
    }

    /// Members changing their metadata in turn, each once per `period`, evenly spread.
    struct MetadataChurn {
        let period: Duration
        var members: Int
        /// When the next change is due.
        var next: MeshInstant
        /// Changes made so far: the next is member `turn % members`'s.
        private var turn = 0

        init(period: Duration, members: Int, start: MeshInstant) {
            self.period = period
            self.members = members
            next = start + period / members
        }

        /// One member's change: its load moves by more than an agent's threshold (0.1).
        mutating func change(_ simulation: Simulation) {
            let member = turn % members
            var metadata = Simulation.metadata(member)
            metadata.cpuLoadMilli = UInt32((turn / members) * 150 % 1000)
            simulation.updateMetadata(member, metadata) // a crashed member changes nothing
            turn += 1
            next = next + period / members
        }
    }

    /// A revocation list of the size a one-host revocation has when signed (a 63-byte host id
    /// and a 100-byte reason): the core carries it as opaque bytes, so its size is what counts.
    static func revocationNotice() -> RevocationNotice {
        var entry = Hostmesh_V1_RevocationEntry()
        entry.hostID = String(repeating: "h", count: 63)
        entry.reason = String(repeating: "r", count: 100)
        entry.revokedAt = 1_800_000_000
        var body = Hostmesh_V1_RevocationListBody()
        body.format = 1
        body.domain = "benchmark"
        body.issuerKey = Data(repeating: 1, count: 32)
        body.version = 1
        body.issuedAt = 1_800_000_000
        body.entries = [entry]
        var wire = Hostmesh_V1_RevocationList()
        wire.body = try! body.serializedData() // plain fields always encode
        wire.signature = Data(repeating: 2, count: 64)
        // Built just above with a domain and a version: it always decodes.
        return try! GossipCodec.decodeRevocationNotice([UInt8](try! wire.serializedData()))
    }

    /// A plain-text table of `rows`, one line per mesh size.
    public static func table(_ rows: [GossipBenchmarkRow]) -> String {
        func cell(_ value: Double?) -> String {
            guard let value else { return "-" }
            return String(Double(Int((value * 100).rounded())) / 100)
        }
        func ratio(_ signed: Double?, _ unsigned: Double?) -> String {
            guard let signed, let unsigned, unsigned > 0 else { return "-" }
            return cell(signed / unsigned) + "x"
        }
        var lines = [
            "members  first_suspect_s  all_dead_s  join_all_s  bytes_per_member_s  revocation_all_s"
                + "  unsigned_bytes  signed/unsigned  churn_bytes  unsigned_churn  signed/unsigned"
        ]
        for row in rows {
            lines.append(
                [
                    String(row.members).padded(7), cell(row.firstSuspectSeconds).padded(15),
                    cell(row.allDeadSeconds).padded(10), cell(row.joinAllSeconds).padded(10),
                    cell(row.bytesPerMemberPerSecond).padded(18), cell(row.revocationAllSeconds).padded(16),
                    cell(row.unsigned?.bytesPerMemberPerSecond).padded(14),
                    ratio(row.bytesPerMemberPerSecond, row.unsigned?.bytesPerMemberPerSecond).padded(15),
                    cell(row.churnBytesPerMemberPerSecond).padded(11),
                    cell(row.unsigned?.churnBytesPerMemberPerSecond).padded(14),
                    ratio(row.churnBytesPerMemberPerSecond, row.unsigned?.churnBytesPerMemberPerSecond).padded(15),
                ].joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }

    private static func totalBytesSent(_ simulation: Simulation) -> Int {
        (0..<simulation.memberCount).reduce(0) { $0 + simulation.traffic(of: $1).bytesSent }
    }
}

extension String {
    fileprivate func padded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
