public import Membership
public import MeshTime

// Fault injection and operator actions.
extension Simulation {
    /// Runs events until virtual time `end` (or until an observer calls `stop()`).
    public func run(until end: MeshInstant) {
        stopRequested = false
        let endNanos = end.nanosecondsSinceOrigin
        while !stopRequested, let next = queue.nextTime, next <= endNanos {
            guard let (time, event) = queue.pop() else { break }
            nowNanos = time
            eventsProcessed += 1
            dispatch(event)
        }
        if !stopRequested, nowNanos < endNanos { nowNanos = endNanos }
    }

    /// Runs for `duration` of virtual time.
    public func run(for duration: Duration) {
        run(until: now + duration)
    }

    /// The member stops forever: it sends nothing, receives nothing, its timers never fire.
    public func crash(_ index: Int) {
        nodes[index].state = .crashed
    }

    /// The member freezes for `duration` (a stopped VM, a long GC pause): datagrams sent to it
    /// are lost, its timers fire late, then it resumes with its state intact.
    public func pause(_ index: Int, for duration: Duration) {
        guard case .running = nodes[index].state else { return }
        let until = nowNanos + duration.wholeNanoseconds
        nodes[index].state = .paused(until: until)
        queue.push(.resume(member: index), at: until)
    }

    /// Every packet to or from the member takes `extraDelay` longer (an overloaded host).
    public func setSlowness(_ index: Int, extraDelay: Duration) {
        nodes[index].slowness = extraDelay.wholeNanoseconds
    }

    /// Splits the network: datagrams and push-pulls only flow between members of the same
    /// group. Members in no group form one more group together.
    public func partition(_ groups: [[Int]]) {
        partitionGroup = Array(repeating: groups.count, count: nodes.count)
        for (group, members) in groups.enumerated() {
            for member in members { partitionGroup[member] = group }
        }
    }

    /// Places members in sites (data centres): datagrams and push-pulls between members of
    /// different sites take `network.interSiteDelay` longer each way. Members in no group form
    /// one more site together.
    public func placeInSites(_ groups: [[Int]]) {
        siteOf = Array(repeating: groups.count, count: nodes.count)
        for (site, members) in groups.enumerated() {
            for member in members { siteOf[member] = site }
        }
    }

    /// Removes any partition.
    public func healPartition() {
        partitionGroup = []
    }

    /// Changes the loss rate from now on.
    public func setLossRate(_ lossRate: Double) {
        network.lossRate = lossRate
    }

    /// Creates a new member that joins through the members at `seeds`; returns its index.
    @discardableResult
    public func addMember(joiningThrough seeds: [Int]) -> Int {
        let index = nodes.count
        addNode(index: index, knownMembers: [])
        if !partitionGroup.isEmpty { partitionGroup.append(partitionGroup.max().map { $0 + 1 } ?? 0) }
        if !siteOf.isEmpty { siteOf.append(siteOf.max().map { $0 + 1 } ?? 0) }
        startNode(index)
        let directives = nodes[index].instance.join(seeds: seeds.map { nodes[$0].address }, now: now)
        execute(directives, by: index)
        return index
    }

    /// The member leaves gracefully; it stops once the core reports `.leaveCompleted`.
    public func leave(_ index: Int) {
        guard case .running = nodes[index].state else { return }
        let directives = nodes[index].instance.leave(now: now)
        execute(directives, by: index)
    }

    /// The member publishes new metadata.
    public func updateMetadata(_ index: Int, _ metadata: MemberMetadata) {
        guard isRunning(index) else { return }
        let directives = nodes[index].instance.updateMetadata(metadata, now: now)
        execute(directives, by: index)
    }

    /// The member learns a revocation list outside gossip (an operator published it there)
    /// and gossips it.
    public func publishRevocation(_ index: Int, _ notice: RevocationNotice) {
        guard isRunning(index) else { return }
        let directives = nodes[index].instance.learnRevocation(notice, now: now)
        execute(directives, by: index)
    }

    // MARK: Node creation

    func addNode(index: Int, knownMembers: [MemberRecord]) {
        let id = Self.memberID(index)
        let address = Self.address(index)
        // One generator per member, derived from the simulation seed and the member index.
        var derive = SeededRandomGenerator(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        let instance = MembershipInstance(
            id: id, address: address, metadata: Self.metadata(index), settings: settings,
            random: SeededRandomGenerator(seed: derive.next()), knownMembers: knownMembers,
            claims: signedClaims ? SimulatedClaimAuthority(member: id) : nil)
        nodes.append(Node(instance: instance, state: .running, id: id, address: address))
        indexByAddress[address] = index
        indexByID[id] = index
    }

    func startNode(_ index: Int) {
        let directives = nodes[index].instance.start(now: now)
        execute(directives, by: index)
    }
}

extension Duration {
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
