// The failure detector: direct probe, indirect probe through relays, Lifeguard nacks and
// local health (Protocol.md §4.3).
extension MembershipInstance {
    mutating func handleProbeTick(generation: UInt64) {
        guard generation == probeGeneration, lifecycle == .running else { return }
        finishProbePeriod()
        // Lifeguard: a member in poor health probes less often, giving slow answers more time.
        schedule(.probeTick(generation: generation), at: now + health.scale(nanos.probeInterval))
        guard let target = nextProbeTarget(), let state = table[target] else { return }
        let sequence = allocateSequence()
        probe = ProbeState(sequence: sequence, target: target)
        // Buddy system: tell a suspect member directly that it is suspected, so it refutes at once.
        var prefix: [MemberUpdate] = []
        if state.status == .suspect {
            prefix.append(.suspect(member: target, incarnation: state.incarnation, from: localID))
        }
        send(.ping(sequence: sequence, target: target), to: state.address, receiver: target, prefix: prefix)
        schedule(.probeTimeout(sequence: sequence), at: now + nanos.probeTimeout)
    }

    /// Ends the current probe: an unanswered probe raises local health by the nacks that did
    /// not arrive (or by one without relays) and suspects the target.
    mutating func finishProbePeriod() {
        guard let finished = probe else { return }
        probe = nil
        if finished.acked { return }
        if finished.expectedNacks > 0 {
            health.apply(max(0, finished.expectedNacks - finished.nacks))
        } else {
            health.apply(1)
        }
        guard let state = table[finished.target], state.status.isLive else { return }
        logger.debug("probe failed", metadata: ["mesh.peer": "\(finished.target)"])
        applySuspect(member: finished.target, incarnation: state.incarnation, from: localID, signature: nil)
    }

    mutating func handleProbeTimeout(sequence: UInt64) {
        guard lifecycle == .running, var current = probe, current.sequence == sequence, !current.acked,
            let target = table[current.target]
        else { return }
        let relays = randomMembers(count: settings.indirectChecks, excluding: current.target, aliveOnly: true)
        let request = PingRequest(
            sequence: sequence, target: current.target, targetAddress: target.address, wantsNack: true)
        for relay in relays {
            guard let address = table[relay]?.address else { continue }
            send(.pingRequest(request), to: address, receiver: relay)
        }
        current.expectedNacks = relays.count
        probe = current
    }

    mutating func handleAck(sequence: UInt64) {
        if var current = probe, current.sequence == sequence {
            if !current.acked {
                current.acked = true
                probe = current
                health.apply(-1)
            }
            return
        }
        if let relay = relays.removeValue(forKey: sequence) {
            send(.ack(sequence: relay.requesterSequence), to: relay.requester, receiver: relay.requesterID)
        }
    }

    mutating func handleNack(sequence: UInt64) {
        if var current = probe, current.sequence == sequence {
            current.nacks += 1
            probe = current
        }
    }

    mutating func handlePing(
        sequence: UInt64, target: MemberID, sender: MemberID, source: PeerAddress, correctStaleAccusation: Bool
    ) {
        // A ping meant for another member (our address was reused) is ignored, not acked.
        guard target == localID || target.hostID.isEmpty else { return }
        var prefix = hints(about: sender)
        if correctStaleAccusation {
            // The prober still suspects an incarnation we refuted (buddy system): answer with
            // the refutation itself, so that it cannot time the stale suspicion out.
            prefix.append(localAlive(metadata: nil))
        }
        send(.ack(sequence: sequence), to: source, receiver: sender, prefix: prefix)
    }

    mutating func handlePingRequest(_ request: PingRequest, sender: MemberID, source: PeerAddress) {
        guard request.target != localID else {
            // Asked to probe ourselves: we are evidently alive, answer directly.
            send(.ack(sequence: request.sequence), to: source, receiver: sender, prefix: hints(about: sender))
            return
        }
        let sequence = allocateSequence()
        relays[sequence] = Relay(
            requester: source, requesterID: sender, requesterSequence: request.sequence, wantsNack: request.wantsNack)
        send(.ping(sequence: sequence, target: request.target), to: request.targetAddress, receiver: request.target)
        schedule(.relayTimeout(sequence: sequence), at: now + nanos.indirectNackTimeout)
    }

    mutating func handleRelayTimeout(sequence: UInt64) {
        guard let relay = relays.removeValue(forKey: sequence), relay.wantsNack else { return }
        send(.nack(sequence: relay.requesterSequence), to: relay.requester, receiver: relay.requesterID)
    }

    /// Tells a member that talks to us what we believe about it when that is not "alive", so
    /// it can refute (a paused member coming back, the far side of a healed partition).
    func hints(about sender: MemberID) -> [MemberUpdate] {
        guard let state = table[sender] else { return [] }
        switch state.status {
        case .alive: return []
        case .suspect: return [.suspect(member: sender, incarnation: state.incarnation, from: localID)]
        case .dead: return [.dead(member: sender, incarnation: state.incarnation, from: localID)]
        case .left: return [.left(member: sender, incarnation: state.incarnation)]
        }
    }

    // MARK: Sending

    /// Emits a datagram with `primary`, the `prefix` updates, and as many queued updates as fit,
    /// for member `receiver` at `address` (the shell binds the receiver into the seal, §4.12.1).
    mutating func send(
        _ primary: GossipPrimaryMessage?, to address: PeerAddress, receiver: MemberID, prefix: [MemberUpdate] = []
    ) {
        var budget = settings.maxEncodedDatagramSize - headerBound(primary)
        for update in prefix {
            budget -= GossipCodec.piggybackCost(of: update)
        }
        var updates = prefix
        broadcasts.take(
            budget: budget, transmitLimit: settings.retransmitLimit(memberCount: liveCount + 1), into: &updates)
        output.append(.send(GossipDatagram(sender: localID, primary: primary, updates: updates), to: address, receiver: receiver))
    }

    /// An upper bound of the encoded size of a datagram's version, sender and primary message.
    func headerBound(_ primary: GossipPrimaryMessage?) -> Int {
        // version (2) + sender (tag, length <= 2 bytes, id) + primary (tag, length, sequence
        // <= 11) + member id and address strings with their tags and lengths.
        let base = 2 + 3 + localID.hostID.utf8.count + 3 + 11
        switch primary {
        case nil: return base
        case .ack, .nack: return base
        case .ping(_, let target): return base + 3 + target.hostID.utf8.count
        case .pingRequest(let request):
            return base + 3 + request.target.hostID.utf8.count + 12 + request.targetAddress.host.utf8.count + 2
        }
    }

    // MARK: Choosing members

    /// The next member to probe, round-robin over a list reshuffled every round (SWIM's
    /// bounded detection time). Dead and left members are skipped.
    mutating func nextProbeTarget() -> MemberID? {
        var rebuilt = false
        while true {
            if probeIndex >= probeOrder.count {
                if rebuilt { return nil }
                rebuildProbeOrder()
                rebuilt = true
                if probeOrder.isEmpty { return nil }
            }
            let candidate = probeOrder[probeIndex]
            probeIndex += 1
            if table[candidate]?.status.isLive == true { return candidate }
        }
    }

    /// Starts a new probe round: forgets long-dead members and reshuffles the live ones.
    mutating func rebuildProbeOrder() {
        var order: [MemberID] = []
        order.reserveCapacity(liveCount)
        var forgotten: [MemberID] = []
        for (id, state) in table {
            if state.status.isLive {
                order.append(id)
            } else if now - state.statusChangedAt >= nanos.deadMemberRetention {
                forgotten.append(id)
            }
        }
        for id in forgotten.sorted() {
            table[id] = nil
            output.append(.memberForgotten(id))
        }
        order.sort()  // dictionary order is not deterministic across processes; sort, then shuffle
        order.shuffle(using: &random)
        probeOrder = order
        probeIndex = 0
    }

    /// Adds a newly live member at a random position of the rest of this round.
    mutating func addToProbeOrder(_ id: MemberID) {
        probeOrder.append(id)
        let remaining = probeOrder.count - probeIndex
        guard remaining > 1 else { return }
        let position = probeIndex + random.next(below: remaining)
        probeOrder.swapAt(position, probeOrder.count - 1)
    }

    /// Up to `count` distinct random live members (alive only, if asked), never `excluding`.
    mutating func randomMembers(count: Int, excluding: MemberID?, aliveOnly: Bool) -> [MemberID] {
        guard count > 0, !probeOrder.isEmpty else { return [] }
        func eligible(_ id: MemberID) -> Bool {
            guard id != excluding, let status = table[id]?.status else { return false }
            return aliveOnly ? status == .alive : status.isLive
        }
        var picked: [MemberID] = []
        if probeOrder.count <= 64 {
            // Small mesh: exact sampling without replacement over the eligible members.
            var candidates: [MemberID] = []
            for id in probeOrder where eligible(id) && !candidates.contains(id) {
                candidates.append(id)
            }
            var index = 0
            while index < candidates.count, picked.count < count {
                let swap = index + random.next(below: candidates.count - index)
                candidates.swapAt(index, swap)
                picked.append(candidates[index])
                index += 1
            }
            return picked
        }
        // Large mesh: rejection sampling; a few misses are cheaper than copying the list.
        var attempts = 0
        let maxAttempts = 3 * count + 32
        while picked.count < count, attempts < maxAttempts {
            attempts += 1
            let id = probeOrder[random.next(below: probeOrder.count)]
            if eligible(id), !picked.contains(id) { picked.append(id) }
        }
        return picked
    }
}
