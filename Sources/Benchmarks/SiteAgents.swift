import ControlAPI
import Foundation
import Hypervisor
import MeshIdentity
#if canImport(Glibc)
import Glibc
#endif

/// Two `hostmesh agent` processes of one domain, one in each of two lab sites (`LabSites`), each
/// listening on its site's address, members of one mesh: what the tunnel path of `bench migrate` runs across the frame
/// link. They are real processes (not agents in the benchmark's process) so that their sockets
/// are in their sites and the QEMUs they start are there too; the benchmark reaches them through
/// their control sockets (unix sockets: paths, which cross namespaces).
struct SiteAgents: Sendable {
    /// Channel port of both agents (each has its site's address to itself).
    static let channelPort = 7946
    let clients: [ControlClient]
    let pids: [pid_t]
    let addresses: [String]
    let work: String

    var source: ControlClient { clients[0] }
    var destination: ControlClient { clients[1] }
    /// The destination agent's channel, at site B.
    var destinationChannel: HostPort { HostPort(host: addresses[1], port: Self.channelPort) }

    /// Starts agent `bench-a` at site A and `bench-b` at site B with `binary` (the hostmesh
    /// executable), state under `work`; returns once both answer on their control sockets.
    static func start(binary: String, sites: LabSites, in work: String) async throws -> SiteAgents {
        let domain = try DomainAuthority(name: "bench")
        let now = Int64(Date().timeIntervalSince1970)
        var clients: [ControlClient] = [], pids: [pid_t] = [], addresses: [String] = []
        // An agent started before a later step failed is killed with the error, not left running.
        var started: SiteAgents { SiteAgents(clients: clients, pids: pids, addresses: addresses, work: work) }
        do {
            for (index, host) in ["bench-a", "bench-b"].enumerated() {
                let dir = work + "/" + host
                try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
                let identity = try HostIdentity(hostID: host)
                try identity.save(inDirectory: dir)
                try domain.certify(identity.publicKeys, serial: UInt64(index + 1), notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
                try domain.trustAnchor.save(dir + "/trust/\(domain.name).pub")
                let address = sites.address(index + 1)
                var arguments = ["agent", "--state-dir", dir, "--log-level", "warning",
                                 "--listen", "\(address):\(channelPort)", "--overlay", "\(address):7947", "--gossip", "\(address):7948"]
                // One mesh, as a fleet's hosts are: bench-b joins through bench-a (their hello
                // crosses the link, and each learns the other's round trip, Protocol.md §6.3).
                if let first = addresses.first { arguments += ["--join", "\(first):\(channelPort)"] }
                let pid = try sites.spawn(on: index + 1, binary, arguments, output: dir + "/agent.log")
                pids.append(pid)
                addresses.append(address)
                clients.append(ControlClient(path: StateDirectory(dir).controlSocket))
            }
        } catch {
            started.stop()
            throw error
        }
        let agents = SiteAgents(clients: clients, pids: pids, addresses: addresses, work: work)
        do {
            for (index, client) in clients.enumerated() { try await waitUntilAnswering(client, pid: pids[index], log: work + "/bench-\(index == 0 ? "a" : "b")/agent.log") }
        } catch {
            agents.stop()
            throw error
        }
        return agents
    }

    private static func waitUntilAnswering(_ client: ControlClient, pid: pid_t, log: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? await client.call("vm.list", Empty(), as: [VMInfo].self)) != nil { return } // not answering yet: asked again below
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(2_000) // no log: the message says so by being empty
        throw ControlError.failed("a benchmark agent did not answer on its control socket within 30 s (its log, \(log), says why; the last of it: \(tail))")
    }

    /// User + system CPU seconds of both agents so far (their QEMUs not included).
    var cpuSeconds: Double { pids.reduce(0) { $0 + ProcessCPU.seconds(of: $1) } }

    /// Kills both agents and every QEMU started under `work` (agents leave their VMs running).
    func stop() {
        for pid in pids {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        LocalMesh.killProcesses(mentioning: work + "/")
    }
}
