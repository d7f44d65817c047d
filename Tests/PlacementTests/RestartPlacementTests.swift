@testable import Placement
import Testing

/// The takeover host choice (Protocol.md §9.2): every survivor computes the same host from the
/// same members whatever their order, never the owner, never a host that takes no VMs or is too
/// small; the VMs of a dead host spread over the survivors; a host that leaves moves only the
/// VMs it was chosen for.
@Suite struct RestartPlacementTests {
    let hosts = [host("a"), host("b"), host("c"), host("d", memoryMiB: 256), host("e", .unavailable("dead")), host("f", .evacuating)]

    @Test func everySurvivorChoosesTheSameHostWhateverTheOrder() {
        for n in 0..<200 {
            let vm = "vm-\(n)"
            let choice = RestartPlacement.choose(vm: vm, memoryMiB: 512, owner: "a", hosts: hosts)
            #expect(choice == RestartPlacement.choose(vm: vm, memoryMiB: 512, owner: "a", hosts: hosts.reversed()))
            #expect(choice == "b" || choice == "c", "\(vm): \(String(describing: choice))")
        }
    }

    @Test func theVMsOfADeadHostSpreadOverTheSurvivors() {
        let choices = (0..<200).compactMap { RestartPlacement.choose(vm: "vm-\($0)", memoryMiB: 128, owner: "a", hosts: hosts) }
        let counts = Dictionary(grouping: choices, by: { $0 }).mapValues(\.count)
        #expect(choices.count == 200 && Set(counts.keys) == ["b", "c", "d"], "\(counts)")
        #expect(counts.values.allSatisfy { $0 > 30 }, "\(counts)")
    }

    @Test func aHostThatLeavesMovesOnlyItsOwnChoices() {
        for n in 0..<200 {
            let vm = "vm-\(n)"
            let before = RestartPlacement.choose(vm: vm, memoryMiB: 128, owner: "a", hosts: hosts)
            let after = RestartPlacement.choose(vm: vm, memoryMiB: 128, owner: "a", hosts: hosts.filter { $0.id != "c" })
            if before != "c" { #expect(after == before, "\(vm)") }
        }
    }

    /// A host whose gossiped free memory cannot hold the VM is passed over even when its
    /// capacity could (other processes, or VMs it started since its last capacity report, use
    /// it); where free memory is not known yet, capacity alone decides.
    @Test func aHostWithoutTheFreeMemoryIsPassedOver() {
        for n in 0..<200 {
            let vm = "vm-\(n)"
            let first = RestartPlacement.choose(vm: vm, memoryMiB: 512, owner: "a", hosts: hosts)!
            var full = hosts
            let index = full.firstIndex { $0.id == first }!
            full[index].memoryFreeMiB = 511
            let second = RestartPlacement.choose(vm: vm, memoryMiB: 512, owner: "a", hosts: full)
            #expect(second != nil && second != first, "\(vm): \(String(describing: second))")
            full[index].memoryFreeMiB = 512
            #expect(RestartPlacement.choose(vm: vm, memoryMiB: 512, owner: "a", hosts: full) == first, "\(vm): exactly enough free memory fits")
        }
        var noneFree = hosts
        for i in noneFree.indices { noneFree[i].memoryFreeMiB = 100 }
        #expect(RestartPlacement.choose(vm: "x", memoryMiB: 128, owner: "a", hosts: noneFree) == nil)
    }

    @Test func noHostWhenNoneFits() {
        #expect(RestartPlacement.choose(vm: "x", memoryMiB: 1 << 20, owner: "a", hosts: hosts) == nil)
        #expect(RestartPlacement.choose(vm: "x", memoryMiB: 128, owner: "a", hosts: [host("a")]) == nil)
        // A fixed value: the weight is the same on every machine and in every process.
        #expect(RestartPlacement.weight("", "") == 0xaf63_bd4c_8601_b7df)
    }
}
