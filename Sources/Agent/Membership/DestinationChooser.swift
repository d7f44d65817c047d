import ControlAPI
import Membership

/// `hostmesh migrate --auto`: the best destination for a VM among the members, from their
/// gossiped capacity. Pure: members in, a choice (or the reason there is none) out.
enum DestinationChooser {
    struct Candidate: Equatable {
        var host: String
        var channel: HostPort
        var score: Double
    }

    /// Alive members of this domain, not this host, not in maintenance, healthy, with room for
    /// `memoryMiB` (plus a reserve); ranked by free memory, load and migrations in flight.
    static func choose(from members: [Member], excluding host: String, domain: String, memoryMiB: Int,
                       reserveMiB: Int = 320) -> Result<Candidate, ChooserError> {
        var rejected: [String] = []
        var best: Candidate?
        for member in members where member.id.hostID != host {
            guard member.status == .alive else { rejected.append("\(member.id): \(member.status)"); continue }
            guard let m = member.metadata, let channel = m.channelAddress else { rejected.append("\(member.id): no metadata yet"); continue }
            guard m.domain == domain else { rejected.append("\(member.id): domain \(m.domain)"); continue }
            guard !m.maintenance else { rejected.append("\(member.id): in maintenance"); continue }
            guard m.health == .ok else { rejected.append("\(member.id): \(m.health)"); continue }
            let freeMiB = Int(m.memoryFreeBytes >> 20)
            guard freeMiB - reserveMiB >= memoryMiB else { rejected.append("\(member.id): \(freeMiB) MiB free"); continue }
            // Room matters most; a busy CPU and migrations already under way count against.
            let score = Double(freeMiB - memoryMiB) / 1024 - m.cpuLoad * 4 - Double(m.migrationsInFlight) * 2
            let candidate = Candidate(host: member.id.hostID, channel: HostPort(host: channel.host, port: Int(channel.port)), score: score)
            if best == nil || candidate.score > best!.score || (candidate.score == best!.score && candidate.host < best!.host) {
                best = candidate
            }
        }
        if let best { return .success(best) }
        return .failure(ChooserError(rejected: rejected))
    }

    struct ChooserError: Error, CustomStringConvertible {
        var rejected: [String]
        var description: String {
            rejected.isEmpty ? "no other member in the mesh to migrate to"
                : "no member can take the VM (\(rejected.joined(separator: "; ")))"
        }
    }
}
