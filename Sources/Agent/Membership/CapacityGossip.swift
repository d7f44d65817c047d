import Membership

/// Which changes of this host's capacity are gossiped at once and which wait (Protocol.md
/// §4.6). Every metadata change is piggybacked by every member that learns it, so a mesh can
/// carry only a few per second whatever its size (`bench gossip --metadata-every 3`: at 30
/// members every datagram is full, 16 KB/s per member against 0.1 KB/s quiet). Changes other
/// members act on (VMs, migrations, cores, health, a large move of free memory) go at once; the
/// drift of free memory and load goes at most once per `driftInterval`. Push-pull carries only
/// what was published, so a drift held back is seen by nobody until then.
enum CapacityGossip {
    /// A change others act on at once: running VMs, migrations in flight, cores, health, or free
    /// memory moved by more than max(1 GiB, a tenth of the total) (placement picks by it).
    static func isStructural(_ next: MemberMetadata, from current: MemberMetadata) -> Bool {
        let largeMemoryMove = max(UInt64(1) << 30, next.memoryTotalBytes / 10)
        return next.runningVMs != current.runningVMs || next.migrationsInFlight != current.migrationsInFlight
            || next.cores != current.cores || next.health != current.health || next.healthReasons != current.healthReasons
            || max(next.memoryFreeBytes, current.memoryFreeBytes) - min(next.memoryFreeBytes, current.memoryFreeBytes) > largeMemoryMove
    }

    /// Drift worth telling: free memory moved by more than 64 MiB, or load by more than 0.1.
    static func hasDrifted(_ next: MemberMetadata, from current: MemberMetadata) -> Bool {
        abs(Int64(next.memoryFreeBytes) - Int64(current.memoryFreeBytes)) > 64 << 20
            || abs(Int(next.cpuLoadMilli) - Int(current.cpuLoadMilli)) > 100
    }

    /// The least time between two gossiped drifts of one host: 30 s up to 30 members, then a
    /// second per member, so the mesh's drift traffic stays about one change a second in all
    /// (measured at 30 members, one change per member per 30 s: 2 KB/s per member).
    static func driftInterval(members: Int) -> Duration {
        .seconds(max(30, members))
    }
}
