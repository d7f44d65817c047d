public import MeshCrypto
public import NIOCore

extension VirtualSwitch {
    /// Adds an overlay peer or updates its address and keys (a rekey: new keys with another
    /// `keyID`; the previous receive key stays accepted until `retirePreviousKeys` or the next
    /// rekey).
    ///
    /// The agent calls this once its secure channel to `host` is up, with keys from
    /// `OverlayKeys.derive(from: session.exportKey(label: OverlayKeys.exportLabel), …)` and the
    /// peer's overlay address from its membership metadata.
    public func setPeer(_ host: HostID, address: SocketAddress, keys: OverlayKeys, link: StretchedLink? = nil) async throws(VirtualSwitchError) {
        try await runtime.onLoop { shell throws(VirtualSwitchError) in
            do throws(OverlayError) { try shell.overlay.setPeer(host, address: address, keys: keys, link: link) } catch { throw .overlay(error) }
            self.logger.debug("overlay peer set", metadata: ["mesh.peer": "\(host)", "vswitch.peer.address": "\(address)",
                                                             "vswitch.key_id": "\(keys.keyID)"])
        }
    }

    /// Convenience: derives the keys from a secret shared with `host` (normally
    /// `session.exportKey(label: OverlayKeys.exportLabel)` of their channel) with `algorithm`
    /// (the channel's AEAD; both ends MUST agree), then `setPeer`.
    public func setPeer(_ host: HostID, address: SocketAddress, sharedSecret: SecretBytes, keyID: UInt8? = nil,
                        algorithm: AEADAlgorithm = .chacha20poly1305) async throws {
        let keys = try OverlayKeys.derive(from: sharedSecret, localHost: configuration.hostID, peerHost: host, keyID: keyID,
                                          algorithm: algorithm)
        try await setPeer(host, address: address, keys: keys)
    }

    /// A host of another, federated domain carrying `link`'s stretched segments (Protocol.md
    /// §8.9): the keys are derived with both ends named as in `link` (`host@domain`, so the two
    /// domains may both have a host with the same id), and the peer's own `locations` (as it sent
    /// them: its host id, its segments) are applied through the link. `host` is the peer's name
    /// here (`host@domain`).
    public func setStretchedPeer(_ host: HostID, address: SocketAddress, sharedSecret: SecretBytes, algorithm: AEADAlgorithm,
                                 link: StretchedLink, locations: [MACLocation]) async throws {
        let keys = try OverlayKeys.derive(from: sharedSecret, localHost: link.localName, peerHost: host, algorithm: algorithm)
        try await setPeer(host, address: address, keys: keys, link: link)
        try await runtime.onLoop { shell in
            shell.core.setLink(host, segments: Set(link.segments.keys))
            self.execute(shell.core.onLocations(link.incoming(locations, peer: host), from: .direct(host), now: self.now()), shell)
        }
    }

    /// The peers of other domains this switch carries stretched segments to (§8.9).
    public func stretchedPeers() async -> [HostID] {
        // Fails only once the switch stopped: it has no peers then.
        (try? await runtime.onLoop { shell in shell.overlay.peerHosts.filter { shell.overlay.link(of: $0) != nil } }) ?? []
    }

    /// The MAC locations a stretched link's hello carries (§8.9): this host's own and those of
    /// the other hosts of its domain on `segments` (not those behind other links), all named as
    /// this host's: it is their gateway.
    public func gatewayLocations(on segments: Set<SegmentID>) async -> [MACLocation] {
        let local = configuration.hostID
        // Fails only once the switch stopped: it relays nothing then, so there is nothing to offer.
        return (try? await runtime.onLoop { shell in
            StretchedLink.asGateway(shell.core.locationEntries.map(\.location), localHost: local, on: segments.contains,
                                    isLinkPeer: shell.core.isLinkPeer)
        }) ?? []
    }

    /// Stops accepting `host`'s previous keys.
    public func retirePreviousKeys(of host: HostID) async {
        // Fails only once the switch stopped: it accepts no keys at all then.
        try? await runtime.onLoop { shell in shell.overlay.retirePreviousKeys(host) }
    }

    /// Forgets a peer (it left or was revoked): its datagrams are dropped from now on, and its
    /// MAC locations are forgotten.
    public func removePeer(_ host: HostID) async {
        // Fails only once the switch stopped: its overlay is closed, nothing of the peer is read.
        try? await runtime.onLoop { shell in
            shell.overlay.removePeer(host)
            shell.core.forgetHost(host)
        }
    }

    /// Location updates the agent learned by gossip (`SwitchEvent.publish` of other hosts).
    public func applyLocations(_ locations: [MACLocation]) async {
        // Fails only once the switch stopped: it forwards nothing, so no table to update.
        try? await runtime.onLoop { shell in
            self.execute(shell.core.onLocations(locations, from: .gossip, now: self.now()), shell)
        }
    }

    /// The MAC location table.
    public func locationEntries() async -> [LocationEntry] {
        // Fails only once the switch stopped: its table is gone.
        (try? await runtime.onLoop { shell in shell.core.locationEntries }) ?? []
    }

    /// Operator action: clears a MAC's duplicate/frozen flags.
    public func clearLocationFlags(mac: MACAddress, segment: SegmentID) async -> Bool {
        // Fails only once the switch stopped: nothing cleared, and false says so.
        (try? await runtime.onLoop { shell in shell.core.clearLocationFlags(mac: mac, segment: segment) }) ?? false
    }
}
