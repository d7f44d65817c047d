/// Where a VM whose owner is gone is restarted (Protocol.md §9.2, "Taker"): one host every
/// survivor agrees on without talking, so that normally exactly one of them watches the VM's
/// lease to its end and claims it. Agreement is what matters here, not balance: the choice uses
/// only what members gossip about themselves (which hosts take VMs, their memory capacity and
/// free memory) and ranks the candidates by rendezvous hashing of (VM, host), so a host that
/// joins or leaves moves only the VMs it ranks first for. Free memory changes, and a survivor may
/// see a round-old figure: two hosts that then disagree both try, and the claim on the shared
/// storage lets only one win; none choosing itself delays the restart until the views agree (one
/// capacity refresh), never makes two.
public enum RestartPlacement {
    /// The host to restart VM `vm` (needing `memoryMiB`) on: among `hosts` that take VMs, are
    /// not `owner`, and whose memory capacity and gossiped free memory (where known) both fit it,
    /// the one with the highest rendezvous weight. Nil when no host can take it.
    public static func choose(vm: String, memoryMiB: Int, owner: String, hosts: [PlacementHost]) -> String? {
        hosts.filter { $0.id != owner && $0.acceptsVMs && $0.memoryCapacityMiB >= memoryMiB && ($0.memoryFreeMiB ?? memoryMiB) >= memoryMiB }
            .max { (weight(vm, $0.id), $0.id) < (weight(vm, $1.id), $1.id) }?.id
    }

    /// FNV-1a (64 bit) of `vm`, a zero byte and `host`: stable across processes and machines
    /// (Swift's `Hasher` is seeded per process, so it would not do).
    static func weight(_ vm: String, _ host: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(vm.utf8) + [0] + Array(host.utf8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
