public import Membership
import NIOCore
import ShellSupport

// Push-pull exchanges and join (Protocol.md §4.9). The bytes travel over the secure channel,
// which the injected `PushPullExchange` owns; the core is fed on the loop.
extension MembershipService {
    /// Joins the mesh through `seeds` (secure-channel addresses of members): a push-pull with
    /// `join = true` to each, in parallel, repeated with backoff (`configuration.joinRetry`)
    /// until at least one answers. Seeds that refused this member (`PushPullRefusal`) are not
    /// retried. Returns the number of live members known afterwards.
    @discardableResult
    public func join(seeds: [PeerAddress]) async throws(MembershipServiceError) -> Int {
        try await join(seeds: seeds, policy: configuration.joinRetry)
    }

    /// Answers a push-pull exchange another member opened over the secure channel: merges its
    /// state and returns this member's (taken after the merge). The lead's channel server
    /// calls this with the request bytes and writes the result back. With
    /// `authenticatedPeer` (the host id the channel authenticated), a request claiming another
    /// sender is refused.
    public func handlePushPull(
        _ request: [UInt8], authenticatedPeer: MemberID? = nil
    ) async throws(MembershipServiceError) -> [UInt8] {
        let remote: PushPullState
        do {
            remote = try GossipCodec.decodePushPullState(request)
        } catch {
            throw .invalidPushPullRequest(error.description)
        }
        if let authenticatedPeer, authenticatedPeer != remote.sender {
            throw .pushPullSenderMismatch(claimed: remote.sender, authenticated: authenticatedPeer)
        }
        let reply = try await runtime.onLoop { state throws(MembershipServiceError) -> PushPullState in
            var remote = remote
            remote.revocations.removeAll { !self.acceptRevocation($0, from: "push-pull from \(remote.sender)", state) }
            remote.federationGrants.removeAll { !self.acceptFederationGrant($0, from: "push-pull from \(remote.sender)", state) }
            self.holdCertificates(of: remote, state)
            guard state.phase == .running, let result = state.instance?.onPushPullRequest(remote, now: self.now()) else {
                throw state.phase == .stopped ? .stopped : .notStarted
            }
            state.counters.pushPullsServed += 1
            self.execute(result.directives, state)
            return result.reply
        }
        return GossipCodec.encode(withCertificates(reply))
    }

    func join(seeds: [PeerAddress], policy: JoinRetryPolicy) async throws(MembershipServiceError) -> Int {
        var failures: [PeerAddress: JoinFailure] = [:]
        var remaining = seeds
        var attempt = 0
        while true {
            attempt += 1
            let round = remaining
            let jobs = try await runtime.onLoop { state throws(MembershipServiceError) -> [PushPullJob] in
                // A member that left cannot come back under the same run (Protocol.md §4.10).
                guard state.phase == .running, !state.leaveRequested,
                    let directives = state.instance?.join(seeds: round, now: self.now())
                else {
                    throw state.phase == .idle || state.phase == .starting ? .notStarted : .stopped
                }
                return self.execute(directives, state, collectJoins: true)
            }
            if jobs.isEmpty { return 0 }  // every seed was this member itself
            let results = await withTaskGroup(of: (PushPullJob, Result<PushPullState, JoinFailure>).self) { group in
                for job in jobs {
                    group.addTask { (job, await self.exchange(job)) }
                }
                var results: [(PushPullJob, Result<PushPullState, JoinFailure>)] = []
                for await result in group { results.append(result) }
                return results
            }
            var joined = false
            for (job, result) in results {
                if case .failure(let failure) = result { failures[job.request.address] = failure }
                if case .success = result {
                    joined = true
                    failures[job.request.address] = nil
                }
                await complete(job, result)
            }
            if joined {
                // The join succeeded; only the count is lost if the service stopped meanwhile.
                return (try? await runtime.onLoop { state in state.instance?.liveMemberCount ?? 0 }) ?? 0
            }
            remaining = remaining.filter { failures[$0]?.refused != true }
            let exhausted = policy.maxAttempts.map { attempt >= $0 } ?? false
            if remaining.isEmpty || exhausted || Task.isCancelled {
                throw .joinFailed(seeds.compactMap { failures[$0] })
            }
            // Jitter (up to a quarter) keeps a restarted mesh from retrying in lockstep.
            let wait = policy.backoff(afterAttempt: attempt)
            // Throws only when cancelled, which the loop's next check turns into joinFailed.
            try? await Task.sleep(for: wait + wait * Double.random(in: 0..<0.25))
        }
    }

    /// `run()`'s background join through the configured seeds: retried until one answers.
    func joinConfiguredSeeds() async {
        var policy = configuration.joinRetry
        policy.maxAttempts = nil
        do {
            _ = try await join(seeds: configuration.seeds, policy: policy)
        } catch {
            guard case .joinFailed(let failures) = error else { return }
            logger.debug("join through the configured seeds failed", metadata: ["reason": "\(error)"])
            // Fails only once the service stopped: then there are no subscribers to tell.
            try? await runtime.onLoop { state in self.publish(.joinFailed(failures), state) }
        }
    }

    /// A push-pull the core asked for (anti-entropy, reconnect), run as a child of `run()`.
    func perform(_ job: PushPullJob) async {
        let result = await exchange(job)
        await complete(job, result)
    }

    /// Hands the exchange's outcome to the core.
    func complete(_ job: PushPullJob, _ result: Result<PushPullState, JoinFailure>) async {
        // Fails only once the service stopped, when there is no core left to tell.
        try? await runtime.onLoop { state in
            guard state.phase == .running, state.instance != nil else { return }
            let directives: [MembershipDirective]?
            switch result {
            case .success(var remote):
                remote.revocations.removeAll { !self.acceptRevocation($0, from: "push-pull from \(remote.sender)", state) }
                // The answer's grants pass the same check as the request's: without it, a grant
                // the answering member accepted unchecked (or forged) was taken as genuine here.
                remote.federationGrants.removeAll { !self.acceptFederationGrant($0, from: "push-pull from \(remote.sender)", state) }
                self.holdCertificates(of: remote, state)
                directives = state.instance?.onPushPullResponse(remote, for: job.request, now: self.now())
            case .failure(let failure):
                state.counters.pushPullsFailed += 1
                directives = state.instance?.onPushPullFailed(job.request, reason: failure.reason, now: self.now())
            }
            if let directives { self.execute(directives, state) }
        }
    }

    /// One exchange: encode, call the injected closure within `pushPullTimeout`, decode, and
    /// check that the expected member answered.
    func exchange(_ job: PushPullJob) async -> Result<PushPullState, JoinFailure> {
        let request = GossipCodec.encode(withCertificates(job.request.state))
        let failure = { (reason: String, refused: Bool) in
            Result<PushPullState, JoinFailure>.failure(JoinFailure(seed: job.request.address, reason: reason, refused: refused))
        }
        let reply: [UInt8]
        do {
            reply = try await withTimeout(configuration.pushPullTimeout) {
                try await self.pushPull(job.peer, request)
            }
        } catch {
            logger.debug("push-pull failed", metadata: ["mesh.peer": "\(job.peer)", "reason": "\(error)"])
            return failure("\(error)", error is any PushPullRefusal)
        }
        let remote: PushPullState
        do {
            remote = try GossipCodec.decodePushPullState(reply)
        } catch {
            return failure("invalid push-pull answer: \(error)", false)
        }
        if let expected = job.request.member, remote.sender != expected {
            return failure("answered by \(remote.sender), expected \(expected)", false)
        }
        return .success(remote)
    }
}
