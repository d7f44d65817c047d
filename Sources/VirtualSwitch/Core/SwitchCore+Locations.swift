public import MeshTime

extension SwitchCore {
    /// Location updates pushed by a peer (`.direct`) or relayed by the agent's gossip.
    ///
    /// A direct push may only carry the sender's own locations; others are ignored. Updates
    /// naming this host are ignored too (this host's claims come from its own ports).
    public mutating func onLocations(_ updates: [MACLocation], from source: LocationSource, now: MeshInstant) -> [SwitchDirective] {
        var changed: [MACLocation] = []
        for update in updates {
            if case let .direct(sender) = source, update.host != sender { continue }
            guard update.host != localHost, update.segment.isValid, !update.mac.isMulticast else { continue }
            // No honest host gets near 2^62 moves; beyond it a claim could not be outbid without
            // overflowing (§8.4).
            guard update.sequence <= Self.maxSequence else {
                counters.locationsRefused &+= 1
                continue
            }
            if case let .direct(sender) = source, isLinkPeer(sender), !linkMayClaim(update, sender: sender) {
                counters.locationsRefused &+= 1
                continue
            }
            switch locations.apply(update, now: now) {
            case let .accepted(movedFrom):
                changed.append(update)
                if movedFrom == localHost { lost(update) }
            case let .frozen(moves):
                lost(update)
                output.append(.event(.macFrozen(update.mac, segment: update.segment, host: update.host, moves: moves)))
            case let .duplicate(hosts, newlyReported):
                if newlyReported {
                    output.append(.event(.duplicateMAC(update.mac, segment: update.segment, hosts: hosts, sequence: update.sequence)))
                }
                // A local VM that lost the tie claims again when it next sends (EVPN: a local
                // learn beats a remote route of the same sequence): a real duplicate MAC then
                // keeps moving until duplicate detection freezes it.
                if locations.entry(mac: update.mac, segment: update.segment)?.location.host != localHost { lost(update) }
            case .withdrawn:
                changed.append(update)
            case .stale, .ignoredFrozen:
                break
            }
        }
        relayLocationsToLinks(changed)
        return takeOutput()
    }

    /// A local port's MAC is now claimed elsewhere. Expected for a frozen or forwarding port
    /// (its VM moved); for an active one it is reported and re-claimed on its next frame.
    private mutating func lost(_ update: MACLocation) {
        guard let id = portsByMAC[LocationTable.Key(mac: update.mac, segment: update.segment)],
              let port = ports[id], port.isActive else { return }
        ports[id]?.lostLocation = true
        output.append(.event(.locationLost(id, to: update.host, sequence: update.sequence)))
    }

    /// Forgets every location of a host that left the mesh (the agent calls this when
    /// membership declares it dead or gone).
    public mutating func forgetHost(_ host: HostID) {
        guard host != localHost else { return }
        links[host] = nil
        _ = locations.forget(host: host)
    }

    /// The periodic tick: expires connections and learned addresses, reports blocked ports past
    /// their activation deadline, removes straggler-forwarding ports past their grace period.
    public mutating func onTick(now: MeshInstant) -> [SwitchDirective] {
        for id in ports.keys.sorted() {
            tickHeld(id, now: now)
            guard var port = ports[id] else { continue }
            port.conntrack.expire(now: now)
            let forgot = port.expireLearned(now: now, idle: settings.learnedAddressIdleTimeout)
            switch port.lifecycle {
            case .blocked:
                if let deadline = port.activationDeadline, now >= deadline {
                    port.activationDeadline = nil
                    output.append(.event(.activationTimedOut(id)))
                }
            case let .forwardingStragglers(_, until) where now >= until:
                detach(port, now: now)  // not active: no withdrawal
                output.append(.event(.portRemoved(id)))
                continue
            default:
                break
            }
            ports[id] = port
            if forgot, port.isActive, locations.entry(mac: port.mac, segment: port.segment)?.location.host == localHost {
                claim(id, now: now)
            }
        }
        return takeOutput()
    }
}
