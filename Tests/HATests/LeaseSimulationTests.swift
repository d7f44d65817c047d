import HA
import MeshTime
import Testing

/// The lease protocol (Protocol.md §9.2) on virtual time: one owner running a VM and renewing
/// its lease through a storage that delays, loses, hangs or cuts its writes; three other hosts
/// watching the lease with their own clocks (each off by up to the drift the settings allow),
/// some of them chosen by placement at once; claims decided by an exclusive create. At every
/// step: no claim succeeds while the owner's copy may still run (self-fence happens first), at
/// most one host wins each epoch, a lease that keeps being renewed is never taken over, and a
/// lease that stops being renewed is taken over within the stated bound.
struct LeaseSimulationTests {
    enum Scenario: String, CaseIterable, CustomTestStringConvertible {
        /// The owner's storage writes start failing (EIO after a timeout).
        case storageFails
        /// The owner's writes start hanging; some land much later.
        case storageHangs
        /// The owner host dies with its copy.
        case ownerDies
        /// The owner is cut off from the mesh but still reaches the storage: membership calls it
        /// dead, placement chooses takers, and nothing may be taken over.
        case meshPartition
        /// Nothing fails (slow, lossy storage only).
        case quiet
        var testDescription: String { rawValue }
    }

    struct Write {
        var landsAt: Int64
        var completesAt: Int64?
        var counter: UInt64
        var issuedLocal: MeshInstant
        var fails: Bool
        var landed = false
        var completed = false
    }

    /// Real time in ms; each host's clock runs at its rate (parts per million off real time).
    struct Clock {
        var ppm: Int64
        func local(_ t: Int64) -> MeshInstant { MeshInstant(nanosecondsSinceOrigin: t * 1_000_000 * (1_000_000 + ppm) / 1_000_000) }
    }

    @Test(arguments: Scenario.allCases, [UInt64(1), 2, 3, 17, 99, 2024, 31_337, 65_521])
    func selfFenceAlwaysPrecedesTakeover(_ scenario: Scenario, seed: UInt64) {
        let settings = LeaseSettings()
        #expect(settings.isSafe)
        var random = SplitMix(seed: seed &* 7919 &+ UInt64(Scenario.allCases.firstIndex(of: scenario)!))
        func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        func between(_ low: Int64, _ high: Int64) -> Int64 { low + Int64(random.next() % UInt64(high - low + 1)) }
        let context = "\(scenario.rawValue), seed \(seed)"

        let drift = settings.driftPPM
        let ownerClock = Clock(ppm: between(-drift, drift))
        let takerClocks = (0..<3).map { _ in Clock(ppm: between(-drift, drift)) }
        var owner = LeaseOwnerCore(settings: settings, epoch: 5, acquiredAt: ownerClock.local(0))
        var takers = (0..<3).map { _ in LeaseTakeoverCore(settings: settings) }
        var lease = LeaseTakeoverCore.Snapshot(owner: "owner", epoch: 5, counter: 0)
        var writes: [Write] = []
        var claims: [Int64: Int] = [:]
        var copyDiesAt: Int64? // real ms
        var takeoverAt: Int64?
        let faultAt = between(3_000, 20_000)
        let end: Int64 = 60_000
        var nextOwnerTick: Int64 = 0
        var nextRead = takerClocks.map { _ in between(0, 500) }
        var lastLanded: Int64 = 0 // the last write that landed, or read that failed: what a wait counts from

        for t in stride(from: Int64(0), through: end, by: 5) {
            let faulty = t >= faultAt
            // Storage: writes land and complete.
            for i in writes.indices {
                if !writes[i].landed, writes[i].landsAt <= t {
                    writes[i].landed = true
                    if !writes[i].fails {
                        lease = .init(owner: "owner", epoch: 5, counter: writes[i].counter)
                        lastLanded = t
                    }
                }
                if !writes[i].completed, let done = writes[i].completesAt, done <= t {
                    writes[i].completed = true
                    if scenario != .ownerDies || t < faultAt {
                        _ = owner.handle(writes[i].fails ? .renewFailed(why: "EIO", now: ownerClock.local(t)) : .renewed(startedAt: writes[i].issuedLocal))
                    }
                }
            }
            // The owner host: dead from the fault on in `ownerDies`.
            if scenario == .ownerDies, faulty, copyDiesAt == nil { copyDiesAt = t }
            if t >= nextOwnerTick, !(scenario == .ownerDies && faulty) {
                nextOwnerTick = t + settings.tickInterval.wholeMilliseconds
                for directive in owner.handle(.tick(now: ownerClock.local(t))) {
                    switch directive {
                    case let .renew(counter):
                        var write = Write(landsAt: t + between(1, 60), completesAt: nil, counter: counter, issuedLocal: ownerClock.local(t), fails: false)
                        if faulty && scenario == .storageFails {
                            write.fails = true
                            write.completesAt = t + between(100, 1_500)
                        } else if faulty && scenario == .storageHangs {
                            // Hangs: never completes; may land very late, or never.
                            write.landsAt = chance(30) ? t + between(500, 20_000) : Int64.max
                            write.completesAt = nil
                        } else {
                            if chance(2) { write.fails = true } // an occasional lost write
                            write.completesAt = write.landsAt + between(0, 30)
                        }
                        writes.append(write)
                    case .fence:
                        #expect(faulty, "\(context): fenced at \(t) ms with working storage")
                        if copyDiesAt == nil { copyDiesAt = t + between(0, settings.killBound.wholeMilliseconds) }
                    }
                }
            }
            // The other hosts read the lease every 500 ms of their clock; placement chooses one or
            // two of them (disagreeing views) once the owner looks dead or its lease stale.
            let ownerLooksGone = faulty && scenario != .quiet
            for h in takers.indices where t >= nextRead[h] {
                nextRead[h] = t + 500 * 1_000_000 / (1_000_000 + takerClocks[h].ppm)
                _ = takers[h].handle(.chosen(ownerLooksGone && (h == 0 || (h == 1 && seed % 2 == 0))))
                let snapshot = chance(3) ? nil : [lease] // an occasional failed read: that host's wait starts again
                if snapshot == nil { lastLanded = max(lastLanded, t) }
                for directive in takers[h].handle(.read(snapshot, now: takerClocks[h].local(t))) {
                    switch directive {
                    case let .claim(epoch):
                        let won = claims[epoch] == nil
                        if won { claims[epoch] = h }
                        // The takeover waits for a read made after the claim (the next one).
                        #expect(takers[h].handle(.claimed(epoch: epoch, won: won)) == [], "\(context): took over without a read after the claim")
                    case let .takeOver(epoch):
                        #expect(claims[epoch] == h, "\(context): host \(h) took over at \(epoch) without holding the claim")
                        #expect(copyDiesAt.map { $0 <= t } == true,
                                "\(context): host \(h) took over at \(t) ms while the owner's copy runs (dies at \(String(describing: copyDiesAt)))")
                        #expect(scenario != .meshPartition && scenario != .quiet, "\(context): a renewed lease was taken over")
                        if takeoverAt == nil { takeoverAt = t }
                    }
                }
            }
        }
        let winners = takers.filter { if case .won = $0.state { return true } else { return false } }
        #expect(winners.count <= 1, "\(context): \(winners.count) hosts won")
        switch scenario {
        case .meshPartition, .quiet:
            #expect(takeoverAt == nil && copyDiesAt == nil, "\(context): the owner lost a VM it could renew")
        case .storageFails, .storageHangs, .ownerDies:
            let taken = try? #require(takeoverAt, "\(context): never taken over")
            // The stated bound (Protocol.md §9.2): expiry on the slowest clock, plus two read
            // periods (the claim's and the confirming read after it) and a landing delay, after
            // the last write landed (or a read failed).
            let bound = settings.expiry.wholeMilliseconds * (1_000_000 + drift) / 1_000_000 + 1_600
            if let taken { #expect(taken - lastLanded <= bound, "\(context): taken over \(taken - lastLanded) ms after the last write, bound \(bound)") }
            if scenario != .ownerDies { #expect(copyDiesAt != nil && copyDiesAt! <= faultAt + settings.fencedWithin.wholeMilliseconds, "\(context): not fenced in time") }
        }
    }

    @Test func theDefaultsAreSafeAndTheInequalityIsChecked() throws {
        let defaults = LeaseSettings()
        #expect(defaults.isSafe)
        #expect(defaults.fencedWithin < .milliseconds(5_300) && defaults.expiresNoSoonerThan > .milliseconds(7_900))
        #expect(throws: LeaseSettingsError.self) { try LeaseSettings(expiry: .seconds(5)).validate() }
        #expect(throws: LeaseSettingsError.self) { try LeaseSettings(renewInterval: .seconds(3)).validate() }
        try LeaseSettings().validate()
    }

    @Test func aRenewalThatLandsLateCannotRevivedAFencedOwner() {
        var owner = LeaseOwnerCore(settings: LeaseSettings(), epoch: 2, acquiredAt: .origin)
        #expect(owner.handle(.tick(now: .origin + .seconds(1))) == [.renew(counter: 1)])
        // The write hangs; the fence comes at 4 s after the last good start (0 s).
        #expect(owner.handle(.tick(now: .origin + .milliseconds(3_900))) == [])
        guard case .fence? = owner.handle(.tick(now: .origin + .seconds(4))).first else {
            Issue.record("no fence at the deadline")
            return
        }
        #expect(owner.handle(.renewed(startedAt: .origin + .seconds(1))) == [])
        #expect(owner.handle(.tick(now: .origin + .seconds(5))) == [], "a fenced owner renews no more")
    }

    @Test func aHigherEpochOnTheStorageFencesAtOnce() {
        var owner = LeaseOwnerCore(settings: LeaseSettings(), epoch: 2, acquiredAt: .origin)
        let directives = owner.handle(.superseded(owner: "node-b", epoch: 4))
        #expect(directives == [.fence(reason: "node-b holds the VM at epoch 4, above this copy's 2")])
    }

    @Test func aReleasedLeaseIsNeverTakenOver() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let released = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9, released: true)
        for s in 0..<60 { #expect(taker.handle(.read([released], now: .origin + .seconds(Int64(s)))) == []) }
    }

    /// During a handover the destination's lease file is there too: a fresh one holds off every
    /// takeover, and the claim rises above the highest epoch.
    @Test func everyLeaseOfTheVMMustBeStaleAndTheClaimRisesAboveTheHighest() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let source = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        for s in 0..<20 {
            let destination = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 4, counter: UInt64(s))
            #expect(taker.handle(.read([source, destination], now: .origin + .seconds(Int64(s)))) == [], "a renewing destination was ignored")
        }
        let stale = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 4, counter: 19)
        #expect(taker.handle(.read([source, stale], now: .origin + .seconds(26))) == [])
        #expect(taker.handle(.read([source, stale], now: .origin + .seconds(27))) == [.claim(epoch: 6)])
    }

    @Test func anUnreadableLeaseStartsTheWaitAgain() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let lease = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        _ = taker.handle(.read([lease], now: .origin))
        _ = taker.handle(.read(nil, now: .origin + .seconds(7)))
        #expect(taker.handle(.read([lease], now: .origin + .seconds(9))) == [])
        #expect(taker.handle(.read([lease], now: .origin + .seconds(16))) == [])
        #expect(taker.handle(.read([lease], now: .origin + .seconds(17))) == [.claim(epoch: 5)])
        #expect(taker.handle(.claimed(epoch: 5, won: false)) == [])
        #expect(taker.state == .lost(epoch: 5))
    }

    /// The claim races an owner's keeper that acquires (or renews) just then: the taker takes the
    /// VM over at once only when a read after its claim shows the leases it decided on; when they
    /// changed, that keeper may have started a copy before the claim landed (it fences on seeing
    /// the claim), so the taker waits for the leases to read the same for `expiry` again.
    @Test func aWonClaimIsConfirmedByAReadAfterIt() {
        let lease = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        func claimed() -> LeaseTakeoverCore {
            var taker = LeaseTakeoverCore(settings: LeaseSettings())
            _ = taker.handle(.chosen(true))
            _ = taker.handle(.read([lease], now: .origin))
            #expect(taker.handle(.read([lease], now: .origin + .seconds(8))) == [.claim(epoch: 5)])
            #expect(taker.handle(.claimed(epoch: 5, won: true)) == [], "took over before reading after the claim")
            return taker
        }
        var quiet = claimed()
        #expect(quiet.handle(.read([lease], now: .origin + .milliseconds(8_500))) == [.takeOver(epoch: 5)])
        #expect(quiet.state == .won(epoch: 5))

        var raced = claimed()
        let acquired = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 4, counter: 10) // a restart in place's keeper
        #expect(raced.handle(.read([acquired], now: .origin + .milliseconds(8_500))) == [])
        #expect(raced.handle(.read(nil, now: .origin + .seconds(9))) == [], "a failed read proved the leases unchanged")
        #expect(raced.handle(.read([acquired], now: .origin + .seconds(10))) == [])
        #expect(raced.handle(.read([acquired], now: .origin + .milliseconds(17_900))) == [])
        #expect(raced.handle(.read([acquired], now: .origin + .seconds(18))) == [.takeOver(epoch: 5)])
    }

    /// A claim winner that dies (or stalls) between its claim and its keeper's first lease write
    /// does not leave the VM down: the loser watches on with the claim in view and, once leases
    /// and claim have read the same for twice the expiry, claims two above the claim.
    @Test func anAbandonedClaimIsClaimedAgainAboveIt() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let lease = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        _ = taker.handle(.read([lease], now: .origin))
        #expect(taker.handle(.read([lease], now: .origin + .seconds(8))) == [.claim(epoch: 5)])
        #expect(taker.handle(.claimed(epoch: 5, won: false)) == [])
        #expect(taker.state == .lost(epoch: 5))
        // The winner never writes its lease: one expiry is not enough (it may still be confirming)...
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .milliseconds(8_500))) == [])
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .milliseconds(16_500))) == [])
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .milliseconds(24_400))) == [])
        // ...twice the expiry is, and the new claim rises above the abandoned one.
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .milliseconds(24_500))) == [.claim(epoch: 7)])
        #expect(taker.handle(.claimed(epoch: 7, won: true)) == [])
        #expect(taker.handle(.read([lease], claim: 7, now: .origin + .seconds(25))) == [.takeOver(epoch: 7)])

        // A host that did not take part sees the claim from its first read: the same wait.
        var other = LeaseTakeoverCore(settings: LeaseSettings())
        _ = other.handle(.chosen(true))
        _ = other.handle(.read([lease], claim: 5, now: .origin))
        #expect(other.handle(.read([lease], claim: 5, now: .origin + .milliseconds(15_900))) == [])
        #expect(other.handle(.read([lease], claim: 5, now: .origin + .seconds(16))) == [.claim(epoch: 7)])
    }

    /// A winner that does write its lease is never claimed over while it renews; once its lease
    /// is stale too (it died after taking over), the usual expiry applies, above its epoch.
    @Test func aClaimWhoseWinnerHoldsItsLeaseIsNotClaimedOver() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let old = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        _ = taker.handle(.read([old], now: .origin))
        _ = taker.handle(.read([old], now: .origin + .seconds(8)))
        _ = taker.handle(.claimed(epoch: 5, won: false))
        for s in 9..<60 {
            let winner = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 5, counter: UInt64(s))
            #expect(taker.handle(.read([old, winner], claim: 5, now: .origin + .seconds(Int64(s)))) == [], "a renewing winner was claimed over at \(s) s")
        }
        let stale = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 5, counter: 59)
        #expect(taker.handle(.read([old, stale], claim: 5, now: .origin + .seconds(66))) == [])
        #expect(taker.handle(.read([old, stale], claim: 5, now: .origin + .seconds(67))) == [.claim(epoch: 7)])
    }

    /// A claim that appears while a host watches starts its wait again (something changed).
    @Test func aNewClaimStartsTheWaitAgain() {
        var taker = LeaseTakeoverCore(settings: LeaseSettings())
        _ = taker.handle(.chosen(true))
        let lease = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        _ = taker.handle(.read([lease], now: .origin))
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .seconds(8))) == [])
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .milliseconds(23_900))) == [])
        #expect(taker.handle(.read([lease], claim: 5, now: .origin + .seconds(24))) == [.claim(epoch: 7)])
    }

    /// Leases across a handover (Protocol.md §9.2, "Leases and handovers"): a destination's
    /// `incoming` lease holds off every takeover while it is renewed, like any lease, but alone
    /// it does not make the VM one to restart (its host never became the owner); a stale source
    /// lease beside a stale incoming one is taken over above both.
    @Test func anIncomingLeaseMustBeStaleButNeverMakesARestartAlone() {
        let source = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 9)
        let released = LeaseTakeoverCore.Snapshot(owner: "a", epoch: 3, counter: 10, released: true)
        let incoming = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 4, counter: 5, incoming: true)

        // Source stopped on purpose after a destination died before the commit: nothing to restart.
        var stopped = LeaseTakeoverCore(settings: LeaseSettings())
        _ = stopped.handle(.chosen(true))
        for s in 0..<60 { #expect(stopped.handle(.read([released, incoming], now: .origin + .seconds(Int64(s)))) == []) }

        // The source died mid-migration and the destination is gone too: taken over above both.
        var both = LeaseTakeoverCore(settings: LeaseSettings())
        _ = both.handle(.chosen(true))
        _ = both.handle(.read([source, incoming], now: .origin))
        #expect(both.handle(.read([source, incoming], now: .origin + .milliseconds(7_900))) == [])
        #expect(both.handle(.read([source, incoming], now: .origin + .seconds(8))) == [.claim(epoch: 6)])

        // A renewing incoming lease holds the takeover off, as any lease does.
        var renewing = LeaseTakeoverCore(settings: LeaseSettings())
        _ = renewing.handle(.chosen(true))
        for s in 0..<30 {
            let fresh = LeaseTakeoverCore.Snapshot(owner: "b", epoch: 4, counter: UInt64(s), incoming: true)
            #expect(renewing.handle(.read([source, fresh], now: .origin + .seconds(Int64(s)))) == [])
        }
    }

    /// At the commit the destination's keeper renews at once (its lease turns `held` without
    /// waiting for the interval); a renewal in flight delays it to the first tick after it.
    @Test func aRenewalCanBeAskedForAtOnce() {
        var owner = LeaseOwnerCore(settings: LeaseSettings(), epoch: 4, acquiredAt: .origin)
        #expect(owner.handle(.renewNow(now: .origin + .milliseconds(10))) == [.renew(counter: 1)])
        #expect(owner.handle(.renewNow(now: .origin + .milliseconds(20))) == [], "two renewals in flight")
        #expect(owner.handle(.tick(now: .origin + .milliseconds(30))) == [])
        _ = owner.handle(.renewed(startedAt: .origin + .milliseconds(10)))
        #expect(owner.handle(.tick(now: .origin + .milliseconds(40))) == [.renew(counter: 2)], "the asked-for renewal waited for the interval")
        _ = owner.handle(.renewed(startedAt: .origin + .milliseconds(40)))
        #expect(owner.handle(.tick(now: .origin + .milliseconds(500))) == [], "renewed again before the interval")
        #expect(owner.handle(.tick(now: .origin + .milliseconds(1_040))) == [.renew(counter: 3)])
    }
}
