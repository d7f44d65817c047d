import ControlAPI
import ServiceLifecycle

/// This host's membership of the mesh: the gossip service (`AgentMembership.service`), the
/// join through the configured members at start, and the `MemberFollower` reacting to members
/// that come and go. The three run as child tasks of this service.
///
/// Graceful shutdown: the gossip service leaves the mesh (other members see this host as
/// `left`, not dead) within its leave timeout and stops; its event stream then ends, which ends
/// the follower; a join still retrying is cancelled. Cancellation stops the gossip service at
/// once, without leaving.
struct MeshMembershipService: Service {
    let membership: AgentMembership
    let follower: MemberFollower
    /// Members to join through at start (their channel addresses).
    let seeds: [HostPort]

    func run() async throws {
        // Subscribed before the service starts, so no member change is missed.
        let events = membership.service.events()
        try await withThrowingDiscardingTaskGroup { group in
            // The gossip service sees this service's graceful shutdown (child tasks inherit it)
            // and leaves; its error (a port it cannot bind) is this service's.
            group.addTask { try await membership.service.run() }
            group.addTask {
                await cancelWhenGracefulShutdown { [membership, seeds] in
                    // `start` binds early so the join need not wait for `run` to get there; a
                    // failure is `run`'s to report.
                    _ = try? await membership.service.start()
                    await membership.joinAtStart(seeds)
                }
            }
            await follower.follow(events)
        }
    }
}
