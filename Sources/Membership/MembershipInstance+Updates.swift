import MeshTime

// Applying membership updates: the member state machine and its incarnation rules
// (Protocol.md §4.5).
//
//   alive(i)   replaces alive/suspect(j) when i > j, and dead/left(j) when i > j
//   suspect(i) replaces alive(j) when i >= j; a suspect at the same incarnation confirms
//   dead(i), left(i) replace alive/suspect(j) when i >= j
//   anything about this member itself at an incarnation >= its own is refuted; a stale
//   accusation (lower incarnation) in a ping is answered with our alive in the ack.
extension MembershipInstance {
    mutating func apply(_ update: MemberUpdate) {
        if let member = update.member, banned.contains(member) { return }
        switch update {
        case .alive(let member, let incarnation, let address, let metadata, let signature):
            applyAlive(member: member, incarnation: incarnation, address: address, metadata: metadata, signature: signature)
        case .suspect(let member, let incarnation, let from, let signature):
            applySuspect(member: member, incarnation: incarnation, from: from, signature: signature)
        case .dead(let member, let incarnation, let from, let signature):
            applyDead(member: member, incarnation: incarnation, from: from, leaving: false, signature: signature)
        case .left(let member, let incarnation, let signature):
            applyDead(member: member, incarnation: incarnation, from: member, leaving: true, signature: signature)
        case .metadata(let member, let metadata):
            applyMetadata(member: member, metadata: metadata, rebroadcast: true)
        case .revocation(let notice):
            applyRevocation(notice)
        case .federationGrant(let notice):
            applyFederationGrant(notice)
        }
    }

    /// `signature` is the member's own (a claim about itself, checked when it would change
    /// the view, Protocol.md §4.16).
    mutating func applyAlive(
        member id: MemberID, incarnation: UInt64, address: PeerAddress, metadata: MemberMetadata?, signature: [UInt8]
    ) {
        if id == localID {
            // Someone remembers us with a newer incarnation (we restarted): move above it.
            if incarnation > self.incarnation, lifecycle == .running { refute(incarnation) }
            if let metadata { applyMetadata(member: id, metadata: metadata, rebroadcast: true) }
            return
        }
        let claim = MembershipClaim.alive(member: id, incarnation: incarnation, address: address)
        guard var state = table[id] else {
            if let rejection = rejection(of: claim, signature: signature) {
                if rejection == .unknownSigner { noteUnverifiedChannel(of: id, metadata: metadata) }
                return
            }
            unverifiedChannels[id] = nil
            // Metadata is its own claim: an alive with forged metadata still counts as alive.
            let metadata = metadata.flatMap { admits(.metadata(member: id, metadata: $0), signature: $0.signature) ? $0 : nil }
            let state = MemberState(
                address: address, status: .alive, incarnation: incarnation, metadata: metadata,
                statusChangedAt: now, signature: signature, signedIncarnation: incarnation)
            table[id] = state
            liveCount += 1
            addToProbeOrder(id)
            enqueueBroadcast(
                .alive(member: id, incarnation: incarnation, address: address, metadata: metadata, signature: signature))
            emitChange(id, state, previous: nil)
            return
        }
        guard incarnation > state.incarnation else {
            if let metadata { applyMetadata(member: id, metadata: metadata, rebroadcast: true) }
            return
        }
        guard admits(claim, signature: signature) else { return }
        let previous = state.status
        state.status = .alive
        state.incarnation = incarnation
        state.address = address
        state.signature = signature
        state.signedIncarnation = incarnation
        suspicions[id] = nil
        if let metadata, metadata.supersedes(state.metadata),
            admits(.metadata(member: id, metadata: metadata), signature: metadata.signature)
        {
            state.metadata = metadata
        }
        if previous != .alive { state.statusChangedAt = now }
        table[id] = state
        if !previous.isLive {
            liveCount += 1
            addToProbeOrder(id)
        }
        // A refutation travels twice as far: one member that misses it would declare a live
        // member dead when its suspicion times out.
        enqueueBroadcast(
            .alive(member: id, incarnation: incarnation, address: address, metadata: state.metadata, signature: signature),
            transmitMultiplier: previous == .alive ? 1 : 2)
        if previous != .alive { emitChange(id, state, previous: previous) }
    }

    /// `signature`: the accuser's, as received; nil when this member is the accuser (it signs).
    mutating func applySuspect(member id: MemberID, incarnation: UInt64, from accuser: MemberID, signature: [UInt8]?) {
        if id == localID {
            if lifecycle == .running, incarnation >= self.incarnation { refute(incarnation) }
            return
        }
        guard var state = table[id], incarnation >= state.incarnation else { return }
        let claim = MembershipClaim.suspect(member: id, incarnation: incarnation, accuser: accuser)
        switch state.status {
        case .dead, .left:
            return
        case .suspect:
            // Another member independently suspects it: Lifeguard shortens the timeout, and the
            // confirmation is re-gossiped so that others can count it too.
            guard var suspicion = suspicions[id], suspicion.confirm(accuser),
                let signature = checkedSignature(claim, signature)
            else { return }
            suspicions[id] = suspicion
            enqueueBroadcast(.suspect(member: id, incarnation: incarnation, from: accuser, signature: signature))
            schedule(.suspicionTimeout(member: id), at: max(now, suspicion.deadline))
        case .alive:
            guard let signature = checkedSignature(claim, signature) else { return }
            let n = liveCount + 1
            var expected = settings.suspicionMultiplier - 2
            if n - 2 < expected { expected = 0 }  // too few members to ever confirm
            let minimum = settings.minimumSuspicionTimeout(memberCount: n).wholeNanoseconds
            let suspicion = Suspicion(
                accuser: accuser, startedAt: now, expectedConfirmations: expected, minimum: minimum,
                maximum: minimum * Int64(settings.suspicionMaxTimeoutMultiplier))
            state.status = .suspect
            state.incarnation = incarnation
            state.statusChangedAt = now
            table[id] = state
            suspicions[id] = suspicion
            enqueueBroadcast(.suspect(member: id, incarnation: incarnation, from: accuser, signature: signature))
            schedule(.suspicionTimeout(member: id), at: suspicion.deadline)
            emitChange(id, state, previous: .alive)
        }
    }

    /// `signature`: the accuser's (the member's own for a leave), as received; nil when this
    /// member is the accuser (it signs).
    mutating func applyDead(
        member id: MemberID, incarnation: UInt64, from accuser: MemberID, leaving: Bool, signature: [UInt8]?
    ) {
        if id == localID {
            // A leave or death announcement about ourselves while running is false: refute.
            if lifecycle == .running, incarnation >= self.incarnation { refute(incarnation) }
            return
        }
        guard var state = table[id], incarnation >= state.incarnation, state.status.isLive else { return }
        let claim: MembershipClaim =
            leaving
            ? .leave(member: id, incarnation: incarnation)
            : .dead(member: id, incarnation: incarnation, accuser: accuser)
        guard let signature = checkedSignature(claim, signature) else { return }
        if leaving { state.signature = signature }
        let previous = state.status
        state.status = leaving ? .left : .dead
        state.incarnation = incarnation
        state.statusChangedAt = now
        suspicions[id] = nil
        table[id] = state
        liveCount -= 1
        enqueueBroadcast(
            leaving
                ? .left(member: id, incarnation: incarnation, signature: signature)
                : .dead(member: id, incarnation: incarnation, from: accuser, signature: signature))
        emitChange(id, state, previous: previous)
    }

    mutating func applyMetadata(member id: MemberID, metadata: MemberMetadata, rebroadcast: Bool) {
        if id == localID {
            // Peers hold a newer version of our metadata than we do (we restarted): re-issue
            // ours above it so that it wins everywhere.
            guard metadata.version > localMetadata.version, lifecycle == .running else { return }
            localMetadata.version = metadata.version + 1
            signLocalMetadata()
            enqueueBroadcast(.metadata(member: localID, metadata: localMetadata))
            return
        }
        guard var state = table[id], metadata.supersedes(state.metadata),
            admits(.metadata(member: id, metadata: metadata), signature: metadata.signature)
        else { return }
        state.metadata = metadata
        table[id] = state
        if rebroadcast { enqueueBroadcast(.metadata(member: id, metadata: metadata)) }
        output.append(.metadataChanged(snapshot(id, state)))
    }

    /// Raises our incarnation above `accused` and announces that we are alive.
    mutating func refute(_ accused: UInt64) {
        incarnation = max(incarnation, accused) + 1
        health.apply(1)  // Lifeguard: being suspected hints that we are the slow one
        logger.debug("refuting suspicion", metadata: ["mesh.incarnation": "\(incarnation)"])
        enqueueBroadcast(localAlive(metadata: localMetadata), transmitMultiplier: 2)
    }

    mutating func handleSuspicionTimeout(member id: MemberID) {
        guard let state = table[id], state.status == .suspect, let suspicion = suspicions[id],
            now >= suspicion.deadline
        else { return }
        logger.debug(
            "suspicion timed out", metadata: ["mesh.peer": "\(id)", "confirmations": "\(suspicion.confirmations)"])
        applyDead(member: id, incarnation: state.incarnation, from: localID, leaving: false, signature: nil)
    }

    // MARK: Dissemination

    mutating func enqueueBroadcast(_ update: MemberUpdate, transmitMultiplier: Int = 1) {
        broadcasts.enqueue(update, cost: GossipCodec.piggybackCost(of: update), transmitMultiplier: transmitMultiplier)
    }

    mutating func scheduleGossipIfNeeded() {
        guard !gossipTickPending, nanos.gossipInterval > 0, !broadcasts.isEmpty, liveCount > 0,
            lifecycle == .running || lifecycle == .leaving
        else { return }
        gossipTickPending = true
        schedule(.gossipTick, at: now + nanos.gossipInterval)
    }

    mutating func handleGossipTick() {
        gossipTickPending = false
        guard lifecycle == .running || lifecycle == .leaving else { return }
        // A leave is complete once membership's own updates, its `left` among them, are sent:
        // metadata still queued (other members' load, say) would only delay it (Protocol.md §4.6).
        if lifecycle == .leaving, broadcasts.membershipLaneIsEmpty || liveCount == 0 {
            completeLeave()
            return
        }
        if broadcasts.isEmpty || liveCount == 0 { return }
        for target in randomMembers(count: settings.gossipFanout, excluding: nil, aliveOnly: false) {
            guard !broadcasts.isEmpty else { break }
            guard let address = table[target]?.address else { continue }
            send(nil, to: address, receiver: target)
        }
        // The next tick is scheduled by `finish()` while updates remain; one more tick completes
        // a pending leave whose own updates are all sent.
        if broadcasts.isEmpty, lifecycle == .leaving {
            gossipTickPending = true
            schedule(.gossipTick, at: now + nanos.gossipInterval)
        }
    }

    mutating func completeLeave() {
        lifecycle = .left
        output.append(.leaveCompleted)
    }

    mutating func emitChange(_ id: MemberID, _ state: MemberState, previous: MemberStatus?) {
        logger.debug(
            "member status changed",
            metadata: [
                "mesh.peer": "\(id)", "mesh.status": "\(state.status)", "mesh.incarnation": "\(state.incarnation)",
            ])
        output.append(.memberChanged(MemberStatusChange(member: snapshot(id, state), previousStatus: previous)))
    }
}
