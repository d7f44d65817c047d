import MeshTime

// Push-pull anti-entropy, join and reconnection after partitions (Protocol.md §4.7).
extension MembershipInstance {
    mutating func handlePushPullTick() {
        guard lifecycle == .running else { return }
        let interval = settings.scaledPushPullInterval(memberCount: liveCount + 1).wholeNanoseconds
        guard interval > 0 else { return }
        schedule(.pushPullTick, at: now + interval)
        if let peer = randomMembers(count: 1, excluding: nil, aliveOnly: true).first, let state = table[peer] {
            output.append(
                .pushPull(
                    PushPullRequest(
                        address: state.address, member: peer, purpose: .antiEntropy, state: localState(isJoin: false))))
        }
        guard settings.reconnectToDeadMembers else { return }
        // Serf-style reconnect: try one dead member with probability dead/alive, so that each
        // side of a healed partition reaches the other without flooding a mesh with one crash.
        var dead: [MemberID] = []
        for (id, state) in table where state.status == .dead {
            dead.append(id)
        }
        guard !dead.isEmpty else { return }
        let probability = Double(dead.count) / Double(max(1, liveCount))
        guard random.nextUnitInterval() < probability else { return }
        dead.sort()
        let peer = dead[random.next(below: dead.count)]
        guard let state = table[peer] else { return }
        output.append(
            .pushPull(
                PushPullRequest(address: state.address, member: peer, purpose: .reconnect, state: localState(isJoin: false))))
    }

    /// Everything this member knows, itself included.
    mutating func localState(isJoin: Bool) -> PushPullState {
        var records: [MemberRecord] = []
        records.reserveCapacity(table.count + 1)
        let running = lifecycle == .running
        var ownSignature = localLeaveSignature
        if running, case .alive(_, _, _, _, let signature) = localAlive(metadata: nil) { ownSignature = signature }
        records.append(
            MemberRecord(
                id: localID, address: localAddress, status: running ? .alive : .left,
                incarnation: incarnation, metadata: localMetadata, signature: ownSignature))
        // Sorted: dictionary order differs between runs, and the receiver's merge order
        // decides its gossip order, which must be reproducible.
        for id in table.keys.sorted() {
            guard let state = table[id] else { continue }
            records.append(
                MemberRecord(
                    id: id, address: state.address, status: state.status, incarnation: state.incarnation,
                    metadata: state.metadata, signature: recordSignature(state)))
        }
        return PushPullState(sender: localID, isJoin: isJoin, members: records, revocations: revocationNotices,
                              federationGrants: federationGrantNotices)
    }

    /// Merges a peer's state record by record, with the same rules as gossip. A peer's "dead"
    /// becomes a suspicion here (the member gets the chance to refute), as in memberlist.
    /// With signed membership (§4.16) a record's alive or leave needs the member's own
    /// signature; a suspect or dead status is the peer's accusation, authenticated by the
    /// secure channel rather than a signature, so this member adopts it as its own suspicion
    /// (signed by itself) instead of passing on an accusation it could not prove.
    mutating func merge(_ remote: PushPullState) {
        // A revoked member's state is ignored whole; revocation lists first, so that a list
        // arriving with the state bans before the records are merged (the shell bans on it).
        guard !banned.contains(remote.sender) else { return }
        for notice in remote.revocations { applyRevocation(notice) }
        for notice in remote.federationGrants { applyFederationGrant(notice) }
        for record in remote.members where !banned.contains(record.id) {
            switch record.status {
            case .alive:
                applyAlive(
                    member: record.id, incarnation: record.incarnation, address: record.address,
                    metadata: record.metadata, signature: record.signature)
            case .suspect, .dead:
                if record.status == .suspect, record.id != localID, table[record.id] == nil {
                    // Learn of it first (as alive), then suspect it as the peer does.
                    applyAlive(
                        member: record.id, incarnation: record.incarnation, address: record.address,
                        metadata: record.metadata, signature: record.signature)
                } else if let metadata = record.metadata {
                    applyMetadata(member: record.id, metadata: metadata, rebroadcast: false)
                }
                if claims == nil {
                    applySuspect(member: record.id, incarnation: record.incarnation, from: remote.sender, signature: [])
                } else {
                    applySuspect(member: record.id, incarnation: record.incarnation, from: localID, signature: nil)
                }
            case .left:
                if let metadata = record.metadata {
                    applyMetadata(member: record.id, metadata: metadata, rebroadcast: false)
                }
                applyDead(
                    member: record.id, incarnation: record.incarnation, from: record.id, leaving: true,
                    signature: record.signature)
            }
        }
    }
}
