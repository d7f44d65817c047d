import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MigrationService
import ServiceLifecycle

/// Links again, after a restart, every stretched link this host held (Protocol.md §8.9, "Links
/// across restarts"): a link's keys live only in memory, so without this a restart of either end
/// cut a VM that had crossed the boundary off from its peers in the domain it left until it moved
/// again. For each kept link whose grant is still in force, this host dials the peer and the two
/// exchange hellos as at a migration (the peer re-keys the pair). A peer that does not answer is
/// tried again, backing off to every `lastRetry`, until it answers or the grant ends.
struct StretchedLinkService: Service {
    let linker: StretchedOverlayLinker
    let store: StretchedLinkStore
    let trust: TrustStore
    let domain: String
    let hostID: String
    let logger: Logger
    var firstRetry: Duration = .seconds(1)
    var lastRetry: Duration = .seconds(30)
    /// When both ends restart at once and each dials the other, the two exchanges can cross: each
    /// end keeps the keys of the exchange it finished last, which need not be the same one. So
    /// the end whose name sorts first dials at once, and the other waits this long and dials only
    /// if the first has not linked with it meanwhile (it had not restarted, or is still down).
    var higherEndWait: Duration = .seconds(5)
    /// The end whose name sorts first links once more this long after its first success, for
    /// the exchanges that crossed all the same (the other end's wait ran out while its own dial
    /// was still being retried): the last exchange, and the keys, are then the same at both ends.
    var settle: Duration = .seconds(5)

    func run() async throws {
        var kept: (links: [StretchedLinkStore.Link], unreadable: [String]) = ([], [])
        do { kept = try store.all() } catch {
            logger.error("cannot read the stretched links kept in the store: none is linked again until a VM moves across", metadata: [
                "error": "\(error)"])
        }
        for peer in kept.unreadable {
            logger.warning("a kept stretched link has an unreadable address and is not linked again", metadata: ["mesh.peer": "\(peer)"])
        }
        await cancelWhenGracefulShutdown { [self, kept] in
            await withTaskGroup(of: Void.self) { group in
                for link in kept.links { group.addTask { await relink(link) } }
            }
        }
        // A service that returns stops the agent: this one's work is done, it waits for the end.
        try await gracefulShutdown()
    }

    private func relink(_ link: StretchedLinkStore.Link) async {
        let peer = PeerName.qualified(host: link.host, domain: link.domain)
        let lower = PeerName.qualified(host: hostID, domain: domain) < peer
        if !lower {
            let started = ContinuousClock.now
            // Cancelled at shutdown: the check below then ends the task.
            try? await Task.sleep(for: higherEndWait)
            if Task.isCancelled || linker.wasDialed(by: peer, since: started) { return }
        }
        var delay = firstRetry, failures = 0, linked = false
        while !Task.isCancelled {
            guard let grant = grantInForce(link.domain) else {
                logger.info("a kept stretched link is not linked again: the grant for its domain is no longer in force or stretches nothing", metadata: [
                    "mesh.peer": "\(peer)"])
                return
            }
            do {
                try await linker.linkTo(link.host, at: link.address, grant: grant)
                logger.info("stretched link linked again after a restart", metadata: ["mesh.peer": "\(peer)", "mesh.address": "\(link.address)"])
                if linked || !lower { return }
                linked = true
                // Cancelled at shutdown: the loop ends at its next check.
                try? await Task.sleep(for: settle)
            } catch {
                if linked { return } // the settling re-link failed: the first one stands
                failures += 1
                // The first failure and then about every ten minutes: a peer that stays away
                // does not flood the log.
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("cannot link a kept stretched link again yet: retrying", metadata: [
                        "mesh.peer": "\(peer)", "mesh.address": "\(link.address)", "error": "\(error)", "mesh.failures": "\(failures)"])
                }
                // Cancelled at shutdown: the loop ends at its next check.
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, lastRetry)
            }
        }
    }

    /// This domain's grant for `peerDomain`, if in force and stretching a network.
    private func grantInForce(_ peerDomain: String) -> FederationGrant? {
        guard let grant = trust.federation.current.grant(of: domain, for: peerDomain),
              grant.refusal(at: Int64(Date().timeIntervalSince1970), skew: trust.clockSkewSeconds) == nil,
              !StretchedOverlayLinker.stretched(grant).isEmpty else { return nil }
        return grant
    }
}
