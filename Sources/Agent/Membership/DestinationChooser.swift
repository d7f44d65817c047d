import ControlAPI
import Membership
import Placement

/// `hostmesh migrate --auto`: the best destination for a VM among the members, from their
/// gossiped capacity, decided by `Placement.rank` (the same scoring as DRS initial placement,
/// with each host's measured load standing in for its VMs). Pure: members in, a choice (or the
/// reason there is none) out.
enum DestinationChooser {
    struct Candidate: Equatable {
        var host: String
        var channel: HostPort
        var score: Double
    }

    /// Alive members of this domain, not this host, not in maintenance, healthy, with room for
    /// `memoryMiB` (plus a reserve); the one where the mesh is most even afterwards. `score` is
    /// minus the imbalance after (higher is better).
    static func choose(from members: [Member], excluding host: String, domain: String, memoryMiB: Int,
                       reserveMiB: Int = 320) -> Result<Candidate, ChooserError> {
        var hosts: [PlacementHost] = []
        var load: [PlacementVM] = []
        for member in members where member.id.hostID != host {
            let candidate = DRSViewBuilder.host(member, domain: domain, maintenance: [], reserveMiB: reserveMiB)
            hosts.append(candidate)
            // What the host runs now, as one stand-in VM: its CPU load and the memory not free.
            if let m = member.metadata, candidate.acceptsVMs {
                load.append(PlacementVM(id: "\u{0}host-" + candidate.id, name: "load of " + candidate.id, host: candidate.id,
                                        cpuDemandMilli: Int(m.cpuLoadMilli) * Int(m.cores),
                                        memoryMiB: max(0, Int((m.memoryTotalBytes - min(m.memoryTotalBytes, m.memoryFreeBytes)) >> 20))))
            }
        }
        let vm = PlacementVM(id: "\u{0}new", name: "the VM", host: "", cpuDemandMilli: 0, memoryMiB: memoryMiB)
        do {
            guard let best = try Placement.rank(vm, in: PlacementInput(hosts: hosts, vms: load)).first,
                  let channel = members.first(where: { $0.id.hostID == best.host })?.metadata?.channelAddress else {
                return .failure(ChooserError(rejected: []))
            }
            return .success(Candidate(host: best.host, channel: HostPort(host: channel.host, port: Int(channel.port)), score: -best.imbalanceAfter))
        } catch {
            if case .noHost(_, let reasons) = error { return .failure(ChooserError(rejected: reasons)) }
            return .failure(ChooserError(rejected: ["\(error)"]))
        }
    }

    struct ChooserError: Error, CustomStringConvertible {
        var rejected: [String]
        var description: String {
            rejected.isEmpty ? "no other member in the mesh to migrate to"
                : "no member can take the VM (\(rejected.joined(separator: "; ")))"
        }
    }
}
