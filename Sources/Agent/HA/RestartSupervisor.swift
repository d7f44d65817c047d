import HA
import Hypervisor
import Logging
import MeshTime

/// The shell of restart in place (Protocol.md §9.1): one `RestartCore` per VM whose QEMU died,
/// fed with the exits `VMManager` reports and with ticks, its directives carried out on the VMs
/// and their store. It makes no decision of its own.
actor RestartSupervisor {
    private let vms: VMManager
    private let hostID: String
    private let meshDefault: VMSpec.RestartPolicy
    private let settings: RestartSettings
    private let logger: Logger
    private let origin = ContinuousClock.now
    private var cores: [String: RestartCore] = [:]
    private var leaseRenewals = LeaseRenewalMonitor()

    init(vms: VMManager, hostID: String, meshDefault: VMSpec.RestartPolicy, settings: RestartSettings, logger: Logger) {
        self.vms = vms
        self.hostID = hostID
        self.meshDefault = meshDefault
        self.settings = settings
        self.logger = logger
    }

    private var now: MeshInstant { MeshInstant(sinceOrigin: ContinuousClock.now - origin) }

    /// One round: new exits become events, every core gets a tick.
    func tick() async {
        _ = await vms.guardUnguardedCopies() // each is logged; a copy killed is an exit like any other below
        if let leased = await vms.leasedCopies() {
            leaseRenewals.check(copies: leased, logger: logger)
        }
        do {
            for exit in try await vms.unexpectedExits(meshDefault: meshDefault) {
                // A finished core (gave up, or withdrawn) belongs to an earlier life of the VM:
                // an operator started it again since (which clears a given-up restart).
                if cores[exit.id]?.isFinished ?? true { cores[exit.id] = RestartCore(settings: settings) }
                logger.warning("VM's QEMU died unexpectedly", metadata: ["vm.id": "\(exit.id)", "vm.name": "\(exit.name)",
                                                                          "vm.epoch": "\(exit.epoch)", "vm.exit": "\(exit.exit)"])
                await handle(exit.id, .qemuExited(exit.exit, epoch: exit.epoch, now: now))
            }
        } catch {
            // The VM table did not read: no exit is acted on this round; the next round reads again.
            logger.error("cannot look for VMs to restart: the VM table does not read", metadata: ["error": "\(error)"])
        }
        for id in cores.keys.sorted() where !(cores[id]?.isFinished ?? true) {
            await handle(id, .timerFired(now: now))
        }
        cores = cores.filter { !$0.value.isFinished }
    }

    /// Feeds one event to `id`'s core and carries out what it says, feeding back each result.
    private func handle(_ id: String, _ event: RestartCore.Event) async {
        guard var core = cores[id] else { return }
        var pending = core.handle(event)
        cores[id] = core
        await showDue(id, core)
        while !pending.isEmpty {
            let directive = pending.removeFirst()
            let result = await carryOut(id, directive)
            guard let result, var core = cores[id] else { continue }
            pending += core.handle(result)
            cores[id] = core
            await showDue(id, core)
        }
    }

    private func showDue(_ id: String, _ core: RestartCore) async {
        if case let .backingOff(until, _, reason) = core.state {
            await vms.noteRestartDue(id, reason: "\(reason)", after: max(.zero, until - now))
        }
    }

    /// Carries out one directive; returns the event that reports its result, if any.
    private func carryOut(_ id: String, _ directive: RestartDirective) async -> RestartCore.Event? {
        switch directive {
        case let .journal(record):
            do {
                return try await vms.journalRestart(id, record, hostID: hostID) ? .journaled(now: now) : .withdrawn
            } catch {
                logger.error("cannot journal a restart: the VM stays down", metadata: ["vm.id": "\(id)", "error": "\(error)"])
                return .journalFailed("\(error)")
            }
        case let .start(epoch):
            do {
                guard try await vms.relaunch(id, epoch: epoch) else { return .withdrawn }
                logger.notice("VM restarted in place", metadata: ["vm.id": "\(id)", "vm.epoch": "\(epoch)"])
                return .started(now: now)
            } catch {
                logger.error("restart in place failed", metadata: ["vm.id": "\(id)", "vm.epoch": "\(epoch)", "error": "\(error)"])
                return .startFailed("\(error)", now: now)
            }
        case let .giveUp(reason):
            logger.error("VM not restarted again", metadata: ["vm.id": "\(id)", "reason": "\(reason)"])
            do { try await vms.giveUpRestart(id, reason: reason) } catch {
                // The VM stays down either way (the safe side); only the report lacks the reason.
                logger.error("cannot record why the VM is not restarted", metadata: ["vm.id": "\(id)", "error": "\(error)"])
            }
            return nil
        }
    }
}
