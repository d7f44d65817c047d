/// One agent's DRS round (Protocol.md §10.5): every agent computes the same plan from the same
/// view, and carries out only the moves of the VMs it owns. Pure.
public enum DRSRound {
    public struct Input: Sendable {
        /// The mesh as this agent sees it.
        public var view: PlacementInput
        public var settings: DRSSettings
        /// This agent's host id.
        public var localHost: String
        /// Migrations in flight in the whole mesh, summed from every host's gossiped capacity.
        public var migrationsInFlight: Int
        /// At most this many DRS moves under way in the mesh at once.
        public var maxConcurrentMoves: Int

        public init(view: PlacementInput, settings: DRSSettings, localHost: String, migrationsInFlight: Int, maxConcurrentMoves: Int) {
            self.view = view
            self.settings = settings
            self.localHost = localHost
            self.migrationsInFlight = migrationsInFlight
            self.maxConcurrentMoves = maxConcurrentMoves
        }
    }

    public struct Decision: Sendable {
        /// The mesh-wide plan (the same on every agent with the same view).
        public var plan: PlacementPlan
        /// Moves this agent starts now: its own VMs, mandatory ones always, balancing ones only
        /// under full automation (the VM's own level, else the mesh's), within the mesh-wide budget.
        public var execute: [PlacementMove]
        /// Balancing moves that wait for an operator (manual and partial automation).
        public var recommendations: [PlacementMove]
    }

    /// The plan has `maxConcurrentMoves` moves; the first `maxConcurrentMoves - migrationsInFlight`
    /// of them may start now (the same prefix on every agent), each by its VM's owner.
    public static func decide(_ input: Input) -> Decision {
        let plan = Placement.plan(input.view, tolerance: input.settings.balance, maxMoves: input.maxConcurrentMoves)
        let budget = max(0, input.maxConcurrentMoves - input.migrationsInFlight)
        // A VM's own automation level, when it has one, replaces the mesh's for its moves.
        var own: [String: DRSSettings.Automation] = [:]
        for vm in input.view.vms { if let level = vm.automation { own[vm.id] = level } }
        let automatic: (PlacementMove) -> Bool = { $0.reason.isMandatory || (own[$0.vm] ?? input.settings.automation) == .full }
        let execute = plan.moves.prefix(budget).filter { $0.from == input.localHost && automatic($0) }
        return Decision(plan: plan, execute: Array(execute), recommendations: plan.moves.filter { !automatic($0) })
    }
}
