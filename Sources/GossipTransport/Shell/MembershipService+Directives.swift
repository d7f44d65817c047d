import Membership
import MeshTime
import NIOCore
import NIOPosix
import ShellSupport

// Datagrams in and out, timers, and the directives of the core — all on the event loop.
extension MembershipService {
    /// A datagram arrived: open it (size, header, key, tag, replay) and hand it to the core.
    func onDatagram(_ buffer: ByteBuffer, from source: SocketAddress) {
        let state = self.runtime.state
        guard state.phase == .running, state.instance != nil else { return }
        state.counters.datagramsIn += 1
        state.counters.bytesIn += UInt64(buffer.readableBytes)
        switch state.opener.open(Array(buffer.readableBytesView), with: state.keyring) {
        case .failure(let drop):
            recordDrop(drop, from: source, state)
        case .success(var datagram):
            guard let instance = state.instance else { return }
            if instance.isBanned(datagram.sender) {
                recordDrop(GossipDrop(.revoked, "sender \(datagram.sender) is revoked"), from: source, state)
                return
            }
            datagram.updates.removeAll { update in
                switch update {
                case .revocation(let notice): return !acceptRevocation(notice, from: "\(PeerAddress(source))", state)
                case .federationGrant(let notice): return !acceptFederationGrant(notice, from: "\(PeerAddress(source))", state)
                default: return false
                }
            }
            if let directives = state.instance?.onDatagram(datagram, from: PeerAddress(source), now: now()) {
                execute(directives, state)
            }
        }
    }

    /// Whether the core may see `notice`: one no newer than the list held passes unverified
    /// (the core ignores it); a newer one must verify, else it is dropped, counted and logged.
    func acceptRevocation(_ notice: RevocationNotice, from source: String, _ state: MembershipShellState) -> Bool {
        guard let instance = state.instance else { return false }
        if notice.version <= instance.revocation(of: notice.domain)?.version ?? 0 { return true }
        let refusal = configuration.revocationVerifier.map { $0(notice.list) } ?? "no trust anchors to verify it with"
        guard let refusal else { return true }
        recordDrop(GossipDrop(.revocationRefused, "domain \(notice.domain) version \(notice.version): \(refusal)"), from: source, state)
        return false
    }

    /// Whether the core may see a federation grant: the same rule as `acceptRevocation`.
    func acceptFederationGrant(_ notice: FederationGrantNotice, from source: String, _ state: MembershipShellState) -> Bool {
        guard let instance = state.instance else { return false }
        if notice.version <= instance.federationGrant(of: notice.key)?.version ?? 0 { return true }
        let refusal = configuration.federationGrantVerifier.map { $0(notice.grant) } ?? "no trust anchors to verify it with"
        guard let refusal else { return true }
        recordDrop(GossipDrop(.federationGrantRefused, "grant \(notice.key) version \(notice.version): \(refusal)"), from: source, state)
        return false
    }

    func recordDrop(_ drop: GossipDrop, from source: SocketAddress, _ state: MembershipShellState) {
        recordDrop(drop, from: "\(PeerAddress(source))", state)
    }

    func recordDrop(_ drop: GossipDrop, from source: String, _ state: MembershipShellState) {
        state.counters.drops[drop.reason, default: 0] += 1
        guard let suppressed = state.dropLog.record(drop.reason, now: now()) else { return }
        logger.log(
            // A claim by a member whose certificate is still on its way is normal while a host joins.
            level: drop.reason == .claimUnknownSigner ? .debug : configuration.dropLogLevel, drop.reason == .revocationRefused ? "revocation list dropped"
                : drop.reason == .federationGrantRefused ? "federation grant dropped"
                : drop.reason == .certificateRefused ? "member certificate dropped"
                : GossipDropReason.claimReasons.contains(drop.reason) ? "membership claim dropped" : "gossip datagram dropped",
            metadata: [
                "mesh.drop.reason": "\(drop.reason)", "mesh.drop.detail": "\(drop.detail)", "mesh.source": "\(source)",
                "mesh.drop.suppressed": "\(suppressed)", "mesh.drop.total": "\(state.counters.dropped(drop.reason))",
            ])
    }

    /// Carries out the core's directives in order. Push-pull requests of a join are returned
    /// to the caller when `collectJoins` is set (`join(seeds:)` runs them itself); all other
    /// push-pulls go to `run()`'s task group.
    @discardableResult
    func execute(_ directives: [MembershipDirective], _ state: MembershipShellState, collectJoins: Bool = false) -> [PushPullJob] {
        var joins: [PushPullJob] = []
        for directive in directives {
            switch directive {
            case .send(let datagram, let address, let receiver):
                send(datagram, to: address, receiver: receiver, state)
            case .schedule(let timer, let deadline):
                schedule(timer, at: deadline, state)
            case .pushPull(let request):
                let job = PushPullJob(request: request, peer: peer(for: request, state))
                state.counters.pushPullsStarted += 1
                if collectJoins, request.purpose == .join {
                    joins.append(job)
                } else {
                    jobSink.yield(job)
                }
            case .memberChanged(let change):
                state.lastUpdate[change.member.id] = now().nanosecondsSinceOrigin
                if !change.member.status.isLive {
                    // A dead or left member's next run starts a new replay window (Protocol.md §4.12.4).
                    state.opener.forget(sender: change.member.id)
                }
                publish(.memberChanged(change), state)
            case .metadataChanged(let member):
                state.lastUpdate[member.id] = now().nanosecondsSinceOrigin
                publish(.metadataChanged(member), state)
            case .memberForgotten(let id):
                state.lastUpdate[id] = nil
                state.opener.forget(sender: id)
                publish(.memberForgotten(id), state)
            case .joined(let seed, let knownMembers):
                logger.debug("joined", metadata: ["mesh.peer": "\(seed)", "mesh.members": "\(knownMembers)"])
                publish(.joined(through: seed, knownMembers: knownMembers), state)
            case .leaveCompleted:
                publish(.leaveCompleted, state)
                finishLeave(completed: true, state)
            case .revocationLearned(let notice):
                logger.debug("revocation list learned", metadata: ["mesh.domain": "\(notice.domain)", "mesh.revocation.version": "\(notice.version)"])
                publish(.revocationLearned(notice), state)
            case .federationGrantLearned(let notice):
                logger.debug("federation grant learned", metadata: ["mesh.federation.grant": "\(notice.key)", "mesh.federation.version": "\(notice.version)"])
                publish(.federationGrantLearned(notice), state)
            case .claimRejected(let rejection, let kind, let signer):
                recordDrop(GossipDrop(GossipDropReason(rejection), "\(kind) claim of \(signer)"), from: "gossip", state)
            }
        }
        if state.unflushed {
            state.unflushed = false
            state.channel?.flush()
        }
        state.counters.localHealthScore = state.instance?.localHealthScore ?? 0
        return joins
    }

    func publish(_ event: MembershipEvent, _ state: MembershipShellState) {
        for subscriber in state.subscribers.values { subscriber.yield(event) }
    }

    /// Whom to dial for a push-pull: the seed itself, else the member's secure-channel address.
    func peer(for request: PushPullRequest, _ state: MembershipShellState) -> PushPullPeer {
        guard let member = request.member else {
            return PushPullPeer(member: nil, address: request.address, gossipAddress: nil, purpose: request.purpose)
        }
        let channelAddress = state.instance?.member(member)?.metadata?.channelAddress ?? request.channelAddress
        return PushPullPeer(
            member: member, address: channelAddress ?? request.address, gossipAddress: request.address,
            purpose: request.purpose)
    }

    // MARK: Sending

    func send(_ datagram: GossipDatagram, to peer: PeerAddress, receiver: MemberID, _ state: MembershipShellState) {
        guard let channel = state.channel else { return }
        guard let address = socketAddress(peer, state) else {
            state.counters.sendFailures += 1
            return
        }
        let payload = state.sealer.seal(GossipCodec.encode(datagram), for: receiver, with: state.keyring)
        state.counters.datagramsOut += 1
        state.counters.bytesOut += UInt64(payload.count)
        let envelope = AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: payload))
        channel.write(envelope).whenFailure { _ in
            self.runtime.state.counters.sendFailures += 1
        }
        state.unflushed = true
    }

    /// The socket address of a gossip address: IP literals at once, names resolved on the
    /// thread pool (never on the loop) and cached; nil while a name is being resolved.
    func socketAddress(_ peer: PeerAddress, _ state: MembershipShellState) -> SocketAddress? {
        if let cached = state.addresses[peer] { return cached }
        if state.addresses.count >= 4096 { state.addresses.removeAll(keepingCapacity: true) }
        // Not an IP literal: a host name, resolved below (its failure is logged and counted there).
        if let address = try? SocketAddress(ipAddress: peer.host, port: Int(peer.port)) {
            state.addresses[peer] = address
            return address
        }
        guard state.resolving.insert(peer).inserted else { return nil }
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try SocketAddress.makeAddressResolvingHost(peer.host, port: Int(peer.port))
        }.whenComplete { result in
            let state = self.runtime.state
            state.resolving.remove(peer)
            switch result {
            case .success(let address):
                state.addresses[peer] = address
            case .failure(let error):
                self.logger.debug("cannot resolve gossip address", metadata: ["mesh.peer": "\(peer)", "error": "\(error)"])
            }
        }
        return nil
    }

    // MARK: Timers

    func schedule(_ timer: MembershipTimer, at deadline: MeshInstant, _ state: MembershipShellState) {
        let id = state.nextTimerID
        state.nextTimerID += 1
        state.timers[id] = eventLoop.scheduleTask(deadline: timeline.deadline(at: deadline)) {
            let state = self.runtime.state
            state.timers[id] = nil
            guard state.phase == .running, let directives = state.instance?.onTimer(timer, now: self.now()) else { return }
            self.execute(directives, state)
        }
    }
}

extension PeerAddress {
    /// The IP address and port of a UDP source address.
    init(_ address: SocketAddress) {
        self.init(host: address.ipAddress ?? "", port: UInt16(clamping: address.port ?? 0))
    }
}
