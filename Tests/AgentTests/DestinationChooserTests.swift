@testable import Agent
import Membership
import MeshTime
import Testing

@Suite struct DestinationChooserTests {
    func member(_ id: String, status: MemberStatus = .alive, freeMiB: UInt64 = 8192, load: UInt32 = 100, migrations: UInt32 = 0,
                domain: String = "lab", maintenance: Bool = false, health: MemberMetadata.Health = .ok) -> Member {
        Member(id: MemberID(id), address: PeerAddress(host: "10.0.0.\(id.count)", port: 7948), status: status, incarnation: 0,
               metadata: MemberMetadata(version: 1, domain: domain, cores: 4, memoryTotalBytes: 16 << 30, memoryFreeBytes: freeMiB << 20,
                                        cpuLoadMilli: load, migrationsInFlight: migrations, health: health, maintenance: maintenance,
                                        channelAddress: PeerAddress(host: "10.0.0.9", port: 7946)),
               statusChangedAt: MeshInstant(nanosecondsSinceOrigin: 0))
    }

    @Test func picksTheRoomiestHealthyMemberAndExplainsRefusals() throws {
        let members = [
            member("self"), member("busy", load: 900, migrations: 3), member("roomy", freeMiB: 16_000),
            member("dead", status: .dead, freeMiB: 64_000), member("maint", freeMiB: 64_000, maintenance: true),
            member("sick", freeMiB: 64_000, health: .unhealthy), member("foreign", freeMiB: 64_000, domain: "prod"),
        ]
        let choice = try DestinationChooser.choose(from: members, excluding: "self", domain: "lab", memoryMiB: 1024).get()
        #expect(choice.host == "roomy")
        guard case .failure(let error) = DestinationChooser.choose(from: members, excluding: "self", domain: "lab", memoryMiB: 20_000) else {
            Issue.record("a 20 GiB VM found room"); return
        }
        for reason in ["dead: dead", "maint: in maintenance", "sick: failing", "foreign: domain prod"] {
            #expect(error.description.contains(reason))
        }
        #expect(DestinationChooser.choose(from: [member("self")], excluding: "self", domain: "lab", memoryMiB: 1).map(\.host)
            == .failure(DestinationChooser.ChooserError(rejected: [])))
    }
}

extension DestinationChooser.ChooserError: Equatable {
    static func == (a: Self, b: Self) -> Bool { a.rejected == b.rejected }
}
