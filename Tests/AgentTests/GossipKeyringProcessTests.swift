import Agent
import ControlAPI
import Foundation
import GossipTransport
import MeshCrypto
import MeshIdentity
import Testing

/// The mesh-wide gossip keyring (Protocol.md §4.17) with five real agent processes on loopback:
/// install, use and remove, each signed by the domain and handed to one agent only, reach every
/// member over the secure channels; a member that was down during the whole rotation catches up
/// when it comes back; no member that stayed up is ever declared dead.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct GossipKeyringProcessTests {
    func members(_ agent: AgentProcess) async throws -> [MemberRow] {
        try await agent.control.call("members", Empty(), as: [MemberRow].self)
    }

    func keyring(_ agent: AgentProcess) async throws -> ControlTypes.GossipKeyringInfo {
        try await agent.control.call("gossip.keyring", Empty(), as: ControlTypes.GossipKeyringInfo.self)
    }

    func eventually(within limit: Duration = .seconds(40), _ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        Issue.record("not within \(limit): \(what)")
        throw CancellationError()
    }

    /// Plans `change` on what `agent` holds, signs it with the domain key, publishes it there.
    func step(_ change: GossipKeyringChange, at agent: AgentProcess, domain: DomainAuthority, secrets: [String] = []) async throws -> UInt64 {
        let held = try await keyring(agent)
        let plan = try GossipKeyringPlan(change, held: held, force: false, now: Int64(Date().timeIntervalSince1970))
        let record = try domain.signGossipKeyring(plan.body)
        let answer = try await agent.control.call("gossip.keyring.publish", ControlTypes.PublishGossipKeyring(record: record.serialized, keys: secrets),
                                                  as: ControlTypes.Text.self)
        print("GossipKeyringProcessTests: \(change) at \(agent.hostID): \(answer.text)")
        return record.version
    }

    /// True when every agent holds `version` with `primary` and exactly `keys`, and announces it.
    func converged(_ agents: [AgentProcess], version: UInt64, primary: GossipKeyID, keys: Set<GossipKeyID>) async throws -> Bool {
        for agent in agents {
            let held = try await keyring(agent)
            guard held.version == version, held.primary == primary.description, Set(held.keys.map(\.id)) == Set(keys.map(\.description)) else { return false }
            for other in agents {
                guard let row = held.members.first(where: { $0.host == other.hostID }), row.version == version,
                      row.primary == primary.description, Set(row.keys) == Set(keys.map(\.description)) else { return false }
            }
        }
        return true
    }

    @Test func aRotationReachesEveryMemberAndOneThatWasDownCatchesUpWithNoFalseDeath() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1")
        var agents = [first]
        for i in 2...5 { agents.append(try await mesh.start("node-\(i)", arguments: ["--join", first.address])) }
        try await eventually("all five alive everywhere") {
            for agent in agents where try await members(agent).filter({ $0.status == "alive" }).count != 5 { return false }
            return true
        }
        let old = try #require(GossipKeyID(hex: try await keyring(first).primary))
        let down = agents[4]
        let up = Array(agents[0..<4])

        // node-5 goes down for the whole rotation; the others see it dead before it starts.
        down.kill()
        try await eventually("node-5 dead everywhere") {
            for agent in up where try await members(agent).first(where: { $0.host == down.hostID })?.status != "dead" { return false }
            return true
        }

        // From now on, nobody but node-5 may be suspected dead or declared dead by anyone.
        let watch = StatusWatch()
        let watcher = Task {
            while !Task.isCancelled {
                for agent in up {
                    guard let rows = try? await members(agent) else { continue } // a control call that fails is retried next round
                    for row in rows where row.host != down.hostID {
                        await watch.note(agent.hostID, saw: row.host, row.status)
                    }
                }
                try? await Task.sleep(for: .milliseconds(200)) // cancelled: the loop ends
            }
        }

        // Install, use, remove: each handed to a different agent, each reaching the four.
        let new = GossipKey.generate()
        let v1 = try await step(.install(new), at: up[0], domain: mesh.domain, secrets: [Hex.encode(new.revealForStorage())])
        try await eventually("version 1 (installed) on every member that is up") {
            try await converged(up, version: v1, primary: old, keys: [old, new.id])
        }
        let v2 = try await step(.use(new.id), at: up[1], domain: mesh.domain)
        try await eventually("version 2 (new primary) on every member that is up") {
            try await converged(up, version: v2, primary: new.id, keys: [old, new.id])
        }
        // Gossip keeps flowing sealed with the new key: a few probe rounds with nobody suspected dead.
        try await Task.sleep(for: .seconds(3))
        let v3 = try await step(.remove(old), at: up[2], domain: mesh.domain)
        try await eventually("version 3 (old key removed) on every member that is up") {
            try await converged(up, version: v3, primary: new.id, keys: [new.id])
        }

        // node-5 comes back with its old keyring (version 0, the removed key only) and catches up.
        let back = try await mesh.restart(down, arguments: ["--join", first.address])
        let all = up + [back]
        do {
            // Bounded by one anti-entropy round as well: what a member announces of its keyring
            // can reach a member that saw the returning host dead only by push-pull (30 s).
            try await eventually(within: .seconds(75), "node-5 holds version 3 and every member sees all five alive") {
                guard try await keyring(back).version == v3 else { return false }
                for agent in all where try await members(agent).filter({ $0.status == "alive" }).count != 5 { return false }
                return try await converged(all, version: v3, primary: new.id, keys: [new.id])
            }
        } catch {
            // What each agent holds and sees, and node-5's keyring and membership lines, say which part did not happen.
            var state: [String] = []
            for agent in all {
                let held = try? await keyring(agent)
                let rows = (try? await members(agent)) ?? []
                state.append("\(agent.hostID): keyring v\(held.map { "\($0.version)" } ?? "?") primary \(held?.primary ?? "?"), sees "
                             + rows.map { "\($0.host)=\($0.status)" }.joined(separator: " ") + "; announced: "
                             + (held?.members ?? []).map { "\($0.host) v\($0.version) \($0.primary ?? "-") \($0.keys)" }.joined(separator: ", "))
            }
            let lines = back.log.split(separator: "\n").filter { $0.contains("keyring") || $0.contains("join") || $0.contains("push-pull") || $0.contains("error") }
            Issue.record("\(state.joined(separator: "\n"))\nnode-5's log:\n\(lines.suffix(40).joined(separator: "\n"))")
            throw error
        }
        let keysFile = String(decoding: try SecureFile.readSecret(back.stateDirectory + "/gossip.keys", what: "gossip keyring"), as: UTF8.self)
        #expect(keysFile.contains(Hex.encode(new.revealForStorage())) && keysFile.contains("key id \(new.id)"))
        #expect(back.log.contains("gossip keyring changed"))

        watcher.cancel()
        _ = await watcher.value
        let deaths = await watch.falseDeaths
        #expect(deaths.isEmpty, "\(deaths)")
        print("GossipKeyringProcessTests: rotation done across 4 members + 1 that was down; polls that saw a suspect: \(await watch.suspicions), false deaths: \(deaths.count)")

        // The keyring survives a restart: node-2 comes back holding version 3 from its store.
        let restarted = try await mesh.restart(up[1], arguments: ["--join", first.address])
        let held = try await keyring(restarted)
        #expect(held.version == v3 && held.primary == new.id.description)
    }

    @Test func aRecordNotSignedByTheDomainIsRefusedAndChangesNothing() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let held = try await keyring(agent)
        let key = GossipKey.generate()
        let plan = try GossipKeyringPlan(.install(key), held: held, force: false, now: Int64(Date().timeIntervalSince1970))
        let impostor = try DomainAuthority(name: "lab")
        let forged = try impostor.signGossipKeyring(plan.body)
        do {
            _ = try await agent.control.call("gossip.keyring.publish",
                                             ControlTypes.PublishGossipKeyring(record: forged.serialized, keys: [Hex.encode(key.revealForStorage())]),
                                             as: ControlTypes.Text.self)
            Issue.record("a keyring record signed by another key was accepted")
        } catch let error as ControlError {
            #expect(error.code == "bad_request")
            #expect(error.message.contains(impostor.signingKey.publicKey.fingerprint), "\(error.message)")
        }
        // The secret missing: refused, naming the key.
        let genuine = try mesh.domain.signGossipKeyring(plan.body)
        do {
            _ = try await agent.control.call("gossip.keyring.publish", ControlTypes.PublishGossipKeyring(record: genuine.serialized, keys: []),
                                             as: ControlTypes.Text.self)
            Issue.record("a record naming a key whose secret nobody handed was accepted")
        } catch let error as ControlError {
            #expect(error.message.contains("\(key.id)") && error.message.contains("secret"), "\(error.message)")
        }
        let after = try await keyring(agent)
        #expect(after.version == 0 && after.keys == held.keys)
        #expect(agent.log.contains("gossip keyring refused"))
        // The planner refuses to remove the primary before anything is signed.
        #expect(throws: GossipKeyringError.cannotRemovePrimary(try #require(GossipKeyID(hex: held.primary)))) {
            _ = try GossipKeyringPlan(.remove(try #require(GossipKeyID(hex: held.primary))), held: held, force: false, now: 0)
        }
    }
}

/// What the watcher saw of members that stayed up.
actor StatusWatch {
    private(set) var falseDeaths: [String] = []
    private(set) var suspicions = 0

    func note(_ viewer: String, saw host: String, _ status: String) {
        if status == "dead" || status == "left" { falseDeaths.append("\(viewer) saw \(host) \(status)") }
        if status == "suspect" { suspicions += 1 }
    }
}
