import Agent
import ControlAPI
import Foundation
import Testing

/// Five real agent processes on loopback form a mesh; one is killed with SIGKILL, the others
/// mark it dead; restarted, it rejoins with a higher incarnation.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct MembershipProcessTests {
    func members(_ agent: AgentProcess) async throws -> [MemberRow] {
        try await agent.control.call("members", Empty(), as: [MemberRow].self)
    }

    /// Polls until `condition` holds for the member list of every agent in `agents`.
    func eventually(_ agents: [AgentProcess], within limit: Duration = .seconds(30), _ what: String,
                    _ condition: ([MemberRow]) -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var all = true
            for agent in agents where !condition(try await members(agent)) { all = false }
            if all { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        var views = ""
        for agent in agents { views += "\n\(agent.hostID): \(try await members(agent).map { "\($0.host)=\($0.status)#\($0.incarnation)" })" }
        Issue.record("not within \(limit): \(what)\(views)")
    }

    @Test func fiveAgentsFormAMeshNoticeADeathAndTakeTheMemberBack() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1")
        var agents = [first]
        for i in 2...5 { agents.append(try await mesh.start("node-\(i)", arguments: ["--join", first.address])) }
        try await eventually(agents, "all five alive everywhere") { rows in
            rows.count == 5 && rows.allSatisfy { $0.status == "alive" } && rows.allSatisfy { $0.cores > 0 }
        }
        // SIGKILL one: no leave, no goodbye.
        let victim = agents[2]
        let incarnationBefore = try await members(agents[0]).first { $0.host == victim.hostID }?.incarnation ?? 0
        victim.kill()
        let survivors = agents.filter { $0.hostID != victim.hostID }
        let killedAt = ContinuousClock.now
        try await eventually(survivors, "the killed member is dead everywhere") { rows in
            rows.first { $0.host == victim.hostID }?.status == "dead"
        }
        print("MembershipProcessTests: \(victim.hostID) known dead by all four survivors after \(ContinuousClock.now - killedAt)")
        // Restart it on the same state directory: it rejoins and refutes its death.
        let back = try await mesh.start(victim.hostID, arguments: ["--join", first.address])
        try await eventually(survivors + [back], "the restarted member is alive again, at a higher incarnation") { rows in
            guard let row = rows.first(where: { $0.host == victim.hostID }) else { return false }
            return row.status == "alive" && row.incarnation > incarnationBefore
        }
    }

    @Test func aHostOfAnotherDomainCannotJoin() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let member = try await mesh.start("node-1")
        let outsider = try await mesh.startForeign("mallory")
        do {
            _ = try await outsider.control.call("join", ControlTypes.Join(address: member.address), as: ControlTypes.Text.self)
            Issue.record("a host certified by another domain joined")
        } catch let error as ControlError {
            #expect(error.message.contains("cannot join"))
        }
        #expect(try await members(member).count == 1)
        // Logged after the refused side was answered: waited for, bounded.
        _ = await member.logged("refused secure channel")
        #expect(member.log.contains("refused secure channel"))
    }
}
