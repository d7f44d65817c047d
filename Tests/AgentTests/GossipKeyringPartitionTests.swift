import Agent
import ControlAPI
import Foundation
import GossipTransport
import MeshCrypto
import MeshIdentity
import Testing

/// Issue 10 item 6's other half (Protocol.md §4.17): a member cut off from the mesh for a whole
/// keyring rotation, and then reachable again without a restart, gets the newest keyring over a
/// secure channel, although every key it holds was removed meanwhile, so none of its gossip
/// datagrams opens anywhere until then. (In the runs so far it arrived from node-1 within 0.3 s
/// of the thaw, before the 2 s catch-up push had a turn: the test accepts any channel send and
/// prints whether a catch-up push was logged.)
extension GossipKeyringProcessTests {
    @Test func aMemberCutOffDuringARotationCatchesUpWhenItIsBackWithoutARestart() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1")
        var agents = [first]
        for i in 2...3 { agents.append(try await mesh.start("node-\(i)", arguments: ["--join", first.address])) }
        try await eventually("all three alive everywhere") {
            for agent in agents where try await members(agent).filter({ $0.status == "alive" }).count != 3 { return false }
            return true
        }
        let old = try #require(GossipKeyID(hex: try await keyring(first).primary))
        let cut = agents[2]
        let up = Array(agents[0..<2])

        // node-3's agent freezes (no datagram, no channel either way); the others find it dead.
        kill(cut.pid, SIGSTOP)
        var resumed = false
        defer { if !resumed { kill(cut.pid, SIGCONT) } } // so the teardown's kill reaches a process that runs
        try await eventually(within: .seconds(60), "node-3 dead on node-1 and node-2") {
            for agent in up where try await members(agent).first(where: { $0.host == cut.hostID })?.status != "dead" { return false }
            return true
        }

        // The whole rotation while it is away: its only key is gone from the mesh at the end.
        let new = GossipKey.generate()
        let v1 = try await step(.install(new), at: up[0], domain: mesh.domain, secrets: [Hex.encode(new.revealForStorage())])
        try await eventually("installed on node-1 and node-2") { try await converged(up, version: v1, primary: old, keys: [old, new.id]) }
        let v2 = try await step(.use(new.id), at: up[1], domain: mesh.domain)
        try await eventually("new primary on node-1 and node-2") { try await converged(up, version: v2, primary: new.id, keys: [old, new.id]) }
        let v3 = try await step(.remove(old), at: up[0], domain: mesh.domain)
        try await eventually("old key removed on node-1 and node-2") { try await converged(up, version: v3, primary: new.id, keys: [new.id]) }

        // Past every channel the changes' broadcasts opened towards node-3 (a handshake waits
        // 10 s for a frozen peer, and would deliver the record the moment it thaws): from now on
        // only a later send can bring node-3 the keyring.
        try await Task.sleep(for: .seconds(12))

        // Reachable again, the same process: it catches up and every member sees all three alive.
        kill(cut.pid, SIGCONT)
        resumed = true
        let back = ContinuousClock.now
        try await eventually(within: .seconds(60), "node-3 holds version 3 and all three see each other alive") {
            guard try await keyring(cut).version == v3 else { return false }
            for agent in agents where try await members(agent).filter({ $0.status == "alive" }).count != 3 { return false }
            return try await converged(agents, version: v3, primary: new.id, keys: [new.id])
        }
        #expect(kill(cut.pid, 0) == 0, "node-3's agent is the process that froze, not a new one")
        #expect(cut.log.contains("gossip keyring changed"))
        // From a peer over a channel (the record names its source), not from a file or a restart.
        let received = cut.log.split(separator: "\n").filter { $0.contains("gossip keyring changed") && $0.contains("mesh.version=\(v3)") }
        #expect(received.contains { $0.contains("mesh.source=node-1") || $0.contains("mesh.source=node-2") },
                "node-3 saw:\n\(cut.log.split(separator: "\n").filter { $0.contains("keyring") }.suffix(10).joined(separator: "\n"))")
        let pushes = up.flatMap { $0.log.split(separator: "\n") }.filter { $0.contains("sending the gossip keyring to a member that holds an older version") && $0.contains("node-3") }
        print("GossipKeyringProcessTests: node-3, cut off during install/use/remove, caught up in \(ContinuousClock.now - back) after it was reachable again, \(pushes.isEmpty ? "from node-1 before any catch-up push (a greeting, or a send that waited for it)" : "with \(pushes.count) catch-up push(es)")")
    }
}
