import ControlAPI
import GossipTransport
import Logging
import Membership

/// What the agent does when members come and go: a new or restarted member is greeted (by the
/// smaller host id: that keys the overlay and exchanges locations and ownership), a departed one
/// is forgotten (its address, its overlay keys and locations).
struct MemberFollower: Sendable {
    /// This host.
    let hostID: String
    let peers: PeerLinks
    let logger: Logger

    /// Follows `events` until they end (the gossip service stopped).
    func follow(_ events: AsyncStream<MembershipEvent>) async {
        // Each member's agent instance as last seen: a new one restarted, seen dead or not.
        var instances: [String: [UInt8]] = [:]
        for await event in events {
            switch event {
            case .memberChanged(let change) where change.member.id.hostID != hostID:
                let member = change.member
                switch member.status {
                case .alive:
                    noteAddress(of: member, instances: &instances,
                                joined: change.previousStatus != .alive && change.previousStatus != .suspect)
                case .dead, .left:
                    logger.info("member \(member.status)", metadata: ["mesh.peer": "\(member.id)", "mesh.incarnation": "\(member.incarnation)"])
                    peers.known.withLockedValue { $0[member.id.hostID] = nil }
                    instances[member.id.hostID] = nil
                    await peers.network.removePeer(member.id.hostID)
                default:
                    break
                }
            case .metadataChanged(let member) where member.id.hostID != hostID && member.status == .alive:
                // A member that restarted quickly is never seen dead: its new metadata (a new
                // instance, perhaps a new channel address) is how we learn it is a fresh agent.
                noteAddress(of: member, instances: &instances, joined: false)
            default:
                break
            }
        }
    }

    /// Records a live member's channel address and agent instance; a new member, or one that
    /// restarted (a new instance, at the same address or another: a fresh agent whose overlay keys,
    /// locations and ownership must be exchanged again), is greeted by the smaller host id.
    private func noteAddress(of member: Member, instances: inout [String: [UInt8]], joined: Bool) {
        guard let channel = member.metadata?.channelAddress, let instance = member.metadata?.instanceID else { return }
        let restarted = instances[member.id.hostID].map { $0 != instance } ?? false
        instances[member.id.hostID] = instance
        let address = HostPort(host: channel.host, port: Int(channel.port))
        let moved = peers.known.withLockedValue { known in
            defer { known[member.id.hostID] = address }
            return known[member.id.hostID] != address
        }
        guard joined || moved || restarted else { return }
        logger.info(joined ? "member joined" : moved ? "member moved" : "member restarted", metadata: [
            "mesh.peer": "\(member.id)", "mesh.incarnation": "\(member.incarnation)", "mesh.channel": "\(address)"])
        if hostID < member.id.hostID { peers.greetings.request(address) }
    }
}
