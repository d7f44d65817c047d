import GossipTransport
import Membership
import ServiceLifecycle

/// Publishes other members' status changes (`member.alive`, `member.suspect`, `member.dead`,
/// `member.left`) as agent events.
struct MembershipEventRelay: Sendable {
    let events: AgentEventHub

    /// Follows `membership` until its events end (the gossip service stopped).
    func follow(_ membership: AsyncStream<MembershipEvent>) async {
        for await event in membership {
            guard case .memberChanged(let change) = event, change.member.id.hostID != events.hostID,
                  change.previousStatus != change.member.status else { continue }
            events.publish("member.\(change.member.status.rawValue)", peer: change.member.id.hostID)
        }
    }
}

/// Runs the relay for the agent's lifetime.
struct MembershipEventRelayService: Service {
    let relay: MembershipEventRelay
    let membership: MembershipService

    func run() async throws {
        let events = membership.events()
        await cancelWhenGracefulShutdown { await relay.follow(events) }
    }
}
