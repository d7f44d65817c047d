import Membership
import MeshTime

/// One scheduled happening in the simulation.
enum SimulationEvent {
    case timer(member: Int, MembershipTimer)
    case datagram(to: Int, from: Int, GossipDatagram, wireBytes: Int)
    case pushPullArrives(to: Int, from: Int, PushPullRequest)
    case pushPullReply(to: Int, PushPullRequest, PushPullState?)
    case resume(member: Int)
}

// The event loop's body: delivering events to cores and carrying out their directives.
extension Simulation {
    func dispatch(_ event: SimulationEvent) {
        switch event {
        case .timer(let member, let timer):
            switch nodes[member].state {
            case .running:
                let directives = nodes[member].instance.onTimer(timer, now: now)
                execute(directives, by: member)
            case .paused:
                nodes[member].deferredTimers.append(timer)
            case .crashed, .left:
                break
            }
        case .datagram(let to, let from, let datagram, let wireBytes):
            guard case .running = nodes[to].state, reachable(from, to) else { return }
            nodes[to].traffic.datagramsReceived += 1
            nodes[to].traffic.bytesReceived += wireBytes
            for observer in deliveryObservers {
                observer(SimulatedDelivery(time: now, from: from, to: to, datagram: datagram))
            }
            let directives = nodes[to].instance.onDatagram(datagram, from: nodes[from].address, now: now)
            execute(directives, by: to)
        case .pushPullArrives(let to, let from, let request):
            guard case .running = nodes[to].state, reachable(from, to) else {
                // The connection attempt times out at the initiator.
                let timeout = network.pushPullTimeout.wholeNanoseconds - oneWayDelay(from, to)
                queue.push(.pushPullReply(to: from, request, nil), at: nowNanos + max(0, timeout))
                return
            }
            let (reply, directives) = nodes[to].instance.onPushPullRequest(request.state, now: now)
            execute(directives, by: to)
            nodes[to].traffic.pushPullBytesSent += pushPullSize(reply)
            queue.push(.pushPullReply(to: from, request, reply), at: nowNanos + oneWayDelay(to, from))
        case .pushPullReply(let to, let request, let reply):
            guard case .running = nodes[to].state else { return }
            let directives: [MembershipDirective]
            if let reply {
                directives = nodes[to].instance.onPushPullResponse(reply, for: request, now: now)
            } else {
                directives = nodes[to].instance.onPushPullFailed(request, reason: "peer unreachable", now: now)
            }
            execute(directives, by: to)
        case .resume(let member):
            guard case .paused(let until) = nodes[member].state, until <= nowNanos else { return }
            nodes[member].state = .running
            let timers = nodes[member].deferredTimers
            nodes[member].deferredTimers = []
            for timer in timers {
                queue.push(.timer(member: member, timer), at: nowNanos)
            }
        }
    }

    func execute(_ directives: [MembershipDirective], by member: Int) {
        for directive in directives {
            switch directive {
            case .send(let datagram, let address, _):
                transmit(datagram, from: member, to: address)
            case .schedule(let timer, let deadline):
                queue.push(.timer(member: member, timer), at: max(deadline.nanosecondsSinceOrigin, nowNanos))
            case .pushPull(let request):
                startPushPull(request, from: member)
            case .memberChanged(let change):
                guard !statusObservers.isEmpty else { continue }
                let record = SimulatedStatusChange(
                    time: now, observer: member, subject: indexByID[change.member.id], change: change)
                for observer in statusObservers { observer(record) }
            case .joined:
                for observer in joinObservers { observer(member, now) }
            case .leaveCompleted:
                nodes[member].state = .left
            case .revocationLearned(let notice):
                for observer in revocationObservers { observer(member, notice, now) }
            case .claimRejected(let reason, _, _):
                nodes[member].traffic.claimsRejected[reason, default: 0] += 1
            case .metadataChanged, .memberForgotten, .federationGrantLearned:
                break
            }
        }
    }

    func transmit(_ datagram: GossipDatagram, from sender: Int, to address: PeerAddress) {
        let wireBytes: Int
        var delivered = datagram
        switch fidelity {
        case .encodeForSize:
            wireBytes = encodedSize(of: datagram) + network.datagramCryptoOverhead
        case .roundTrip:
            let bytes = GossipCodec.encode(datagram)
            wireBytes = bytes.count + network.datagramCryptoOverhead
            do {
                delivered = try GossipCodec.decodeDatagram(bytes)
            } catch {
                preconditionFailure("seed \(seed): the codec could not decode its own output: \(error)")
            }
        }
        nodes[sender].traffic.datagramsSent += 1
        nodes[sender].traffic.bytesSent += wireBytes
        if wireBytes > nodes[sender].traffic.largestDatagram { nodes[sender].traffic.largestDatagram = wireBytes }
        guard let receiver = indexByAddress[address] else { return }
        if network.lossRate > 0, random.nextUnitInterval() < network.lossRate { return }
        queue.push(
            .datagram(to: receiver, from: sender, delivered, wireBytes: wireBytes),
            at: nowNanos + oneWayDelay(sender, receiver))
    }

    /// The exact encoded size of `datagram`: its header and primary message encoded now, its
    /// updates at their cached piggyback cost.
    func encodedSize(of datagram: GossipDatagram) -> Int {
        var size = GossipCodec.encode(GossipDatagram(sender: datagram.sender, primary: datagram.primary)).count
        for update in datagram.updates {
            if let cost = piggybackCosts[update] {
                size += cost
            } else {
                let cost = GossipCodec.piggybackCost(of: update)
                if piggybackCosts.count >= 100_000 { piggybackCosts.removeAll(keepingCapacity: true) }
                piggybackCosts[update] = cost
                size += cost
            }
        }
        return size
    }

    func startPushPull(_ request: PushPullRequest, from member: Int) {
        nodes[member].traffic.pushPullsStarted += 1
        nodes[member].traffic.pushPullBytesSent += pushPullSize(request.state)
        guard let peer = indexByAddress[request.address] else {
            queue.push(
                .pushPullReply(to: member, request, nil), at: nowNanos + network.pushPullTimeout.wholeNanoseconds)
            return
        }
        // Connection setup and handshake cost about two round trips before the state goes out.
        let delay = 5 * oneWayDelay(member, peer)
        queue.push(.pushPullArrives(to: peer, from: member, request), at: nowNanos + delay)
    }

    /// Push-pull states are counted with an estimate (the encoded size of one record times the
    /// record count): encoding thousands of records per exchange would dominate the run time,
    /// and push-pull travels over TCP, outside the gossip byte budget.
    func pushPullSize(_ state: PushPullState) -> Int {
        guard let first = state.members.first else { return 8 }
        let one = GossipCodec.encode(PushPullState(sender: state.sender, isJoin: state.isJoin, members: [first])).count
        return one * state.members.count + state.revocations.reduce(0) { $0 + $1.list.count + 3 }
    }

    func reachable(_ a: Int, _ b: Int) -> Bool {
        partitionGroup.isEmpty || partitionGroup[a] == partitionGroup[b]
    }

    /// Base latency + the link's fixed extra + the distance between sites + jitter + both ends' slowness.
    func oneWayDelay(_ a: Int, _ b: Int) -> Int64 {
        var delay = network.baseLatency.wholeNanoseconds
        let spread = network.perLinkLatencySpread.wholeNanoseconds
        if spread > 0 {
            var link = SeededRandomGenerator(seed: seed ^ (UInt64(min(a, b)) << 32 | UInt64(max(a, b))))
            delay += Int64(link.next() % UInt64(spread))
        }
        if !siteOf.isEmpty, siteOf[a] != siteOf[b] { delay += network.interSiteDelay.wholeNanoseconds }
        let jitter = network.jitter.wholeNanoseconds
        if jitter > 0 { delay += Int64(random.next() % UInt64(jitter)) }
        return delay + nodes[a].slowness + nodes[b].slowness
    }
}
