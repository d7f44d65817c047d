public import MeshTime

// The events a shell feeds to the core. Each returns the directives to carry out, in order.
extension MembershipInstance {
    /// Starts the member: announces it (queued until there is someone to tell) and schedules
    /// the first probe and push-pull ticks at random offsets, so members started together do
    /// not probe in lockstep. MUST be called exactly once, before any other event.
    public mutating func start(now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .created else { return finish() }
        lifecycle = .running
        signLocalMetadata()
        enqueueBroadcast(localAlive(metadata: localMetadata))
        probeGeneration += 1
        schedule(.probeTick(generation: probeGeneration), at: self.now + randomNanos(below: nanos.probeInterval))
        let pushPull = settings.scaledPushPullInterval(memberCount: liveCount + 1).wholeNanoseconds
        if pushPull > 0 {
            schedule(.pushPullTick, at: self.now + randomNanos(below: pushPull))
        }
        return finish()
    }

    /// Joins the mesh through `seeds`: asks the shell for a push-pull with each seed (the
    /// first that answers is enough). Members learned this way are announced as they are
    /// merged; a `.joined` directive reports each seed that answered.
    public mutating func join(seeds: [PeerAddress], now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .running else { return finish() }
        let state = localState(isJoin: true)
        for seed in seeds where seed != localAddress {
            output.append(.pushPull(PushPullRequest(address: seed, member: nil, purpose: .join, state: state)))
        }
        return finish()
    }

    /// A decoded datagram arrived from `source` (the UDP source address, used to answer pings
    /// from members not yet known). Piggybacked updates are applied before the primary message.
    public mutating func onDatagram(
        _ datagram: GossipDatagram, from source: PeerAddress, now: MeshInstant
    ) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .running || lifecycle == .leaving else { return finish() }
        // A revoked member's datagrams are ignored whole (the shell counts them, §4.14).
        guard !banned.contains(datagram.sender) else { return finish() }
        var staleAccusation = false
        for update in datagram.updates {
            staleAccusation = staleAccusation || isStaleAccusation(update)
            apply(update)
        }
        // A member this one has never learned is talking to it: its certificate (and so its
        // alive) has not arrived here yet. Fetch them rather than wait for anti-entropy.
        if claims != nil, table[datagram.sender] == nil { certificateWanted = true }
        pullCertificatesIfWanted(from: datagram.sender, source: source)
        switch datagram.primary {
        case nil:
            break
        case .ping(let sequence, let target):
            handlePing(
                sequence: sequence, target: target, sender: datagram.sender, source: source,
                correctStaleAccusation: staleAccusation)
        case .pingRequest(let request):
            handlePingRequest(request, sender: datagram.sender, source: source)
        case .ack(let sequence):
            handleAck(sequence: sequence)
        case .nack(let sequence):
            handleNack(sequence: sequence)
        }
        return finish()
    }

    /// Decodes a datagram's plaintext and handles it; throws (changing nothing) if it is not a
    /// valid gossip datagram.
    public mutating func onDatagram(
        bytes: [UInt8], from source: PeerAddress, now: MeshInstant
    ) throws(GossipCodecError) -> [MembershipDirective] {
        let datagram = try GossipCodec.decodeDatagram(bytes)
        return onDatagram(datagram, from: source, now: now)
    }

    /// A timer scheduled by an earlier `.schedule` directive is due.
    public mutating func onTimer(_ timer: MembershipTimer, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        switch timer {
        case .probeTick(let generation):
            handleProbeTick(generation: generation)
        case .probeTimeout(let sequence):
            handleProbeTimeout(sequence: sequence)
        case .relayTimeout(let sequence):
            handleRelayTimeout(sequence: sequence)
        case .suspicionTimeout(let member):
            handleSuspicionTimeout(member: member)
        case .gossipTick:
            handleGossipTick()
        case .pushPullTick:
            handlePushPullTick()
        }
        return finish()
    }

    /// Replaces this member's metadata and gossips it. The version is set by the core (one
    /// above the current one); the `version` of `metadata` is ignored.
    public mutating func updateMetadata(_ metadata: MemberMetadata, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        var newMetadata = metadata
        newMetadata.version = localMetadata.version + 1
        localMetadata = newMetadata
        signLocalMetadata()
        if lifecycle == .running {
            // The signed copy: the caller's carries the previous version's signature.
            enqueueBroadcast(.metadata(member: localID, metadata: localMetadata))
        }
        return finish()
    }

    /// This member's host key changed (key rotation, Protocol.md §4.16): its alive claim is
    /// re-issued one incarnation up and its metadata one version up, both signed with the new
    /// key, so that they replace the claims signed with the old key everywhere.
    public mutating func renewClaims(now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .running, claims != nil else { return finish() }
        incarnation += 1
        localMetadata.version += 1
        signLocalMetadata()
        enqueueBroadcast(localAlive(metadata: localMetadata), transmitMultiplier: 2)
        return finish()
    }

    /// Leaves the mesh gracefully: stops probing, gossips a leave announcement, and returns
    /// `.leaveCompleted` (now, or from a later gossip tick) once it has been disseminated.
    /// The shell SHOULD keep delivering events until then, bounded by its own timeout.
    public mutating func leave(now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .running else { return finish() }
        lifecycle = .leaving
        probe = nil
        localLeaveSignature = sign(.leave(member: localID, incarnation: incarnation))
        enqueueBroadcast(.left(member: localID, incarnation: incarnation, signature: localLeaveSignature))
        if liveCount == 0 { completeLeave() }
        return finish()
    }

    /// Another member opened a push-pull exchange and sent `remote`: merge it, and send back
    /// `reply` (the local state after the merge, so refutations it caused are included).
    public mutating func onPushPullRequest(
        _ remote: PushPullState, now: MeshInstant
    ) -> (reply: PushPullState, directives: [MembershipDirective]) {
        begin(now)
        guard lifecycle == .running || lifecycle == .leaving else {
            return (localState(isJoin: false), finish())
        }
        merge(remote)
        return (localState(isJoin: false), finish())
    }

    /// The peer of a push-pull this member started answered with `remote`.
    public mutating func onPushPullResponse(
        _ remote: PushPullState, for request: PushPullRequest, now: MeshInstant
    ) -> [MembershipDirective] {
        begin(now)
        guard lifecycle == .running || lifecycle == .leaving else { return finish() }
        merge(remote)
        if request.purpose == .join {
            output.append(.joined(through: request.address, knownMembers: liveCount))
        }
        return finish()
    }

    /// A push-pull this member started failed (unreachable, refused, bad certificate).
    /// Nothing changes in the protocol state; the shell reports join failures itself.
    public mutating func onPushPullFailed(_ request: PushPullRequest, reason: String, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        logger.debug(
            "push-pull failed",
            metadata: ["mesh.peer": "\(request.address)", "purpose": "\(request.purpose)", "reason": "\(reason)"])
        return finish()
    }

    /// True for a suspicion, death or leave of this member at an incarnation it already
    /// refuted: the sender missed the refutation and should get it back directly.
    func isStaleAccusation(_ update: MemberUpdate) -> Bool {
        switch update {
        case .suspect(let member, let accused, _, _), .dead(let member, let accused, _, _), .left(let member, let accused, _):
            return member == localID && accused < incarnation && lifecycle == .running
        case .alive, .metadata, .revocation, .federationGrant:
            return false
        }
    }

    mutating func randomNanos(below bound: Int64) -> Int64 {
        guard bound > 0 else { return 0 }
        return Int64(random.next(below: Int(bound)))
    }
}
