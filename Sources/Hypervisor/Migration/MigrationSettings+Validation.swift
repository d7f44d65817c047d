extension MigrationSettings {
    /// The range QEMU (9.x `migrate-set-parameters`) accepts for each field, or the range that
    /// makes sense where QEMU's is wider: settings from a control request are checked against
    /// these before a migration starts, so an absurd value fails with the field's name instead
    /// of halfway through a migration (or in an arithmetic overflow).
    public static let allowedRanges: [(field: String, range: ClosedRange<Int64>)] = [
        ("downtimeLimitMs", 1...2_000_000),            // QEMU: at most 2000 s; 0 would never converge
        ("maxBandwidthBytesPerSecond", 1...(1 << 40)), // 1 TiB/s: no link is faster; 0 would stall
        ("multifdChannels", 1...255),                  // QEMU: multifd-channels is a uint8, at least 1
        ("xbzrleCacheBytes", 4096...(1 << 40)),        // QEMU: at least one page
        ("postcopyAfterPasses", 0...1000),             // 0: post-copy right after the first pass
        ("throttleInitialPercent", 1...99),            // QEMU: cpu-throttle-initial 1-99
        ("throttleIncrementPercent", 1...99),          // QEMU: cpu-throttle-increment 1-99
        ("throttleMaxPercent", 1...99),                // QEMU: max-cpu-throttle 1-99
        ("announceInitialMs", 1...100_000),            // QEMU: at most 100000
        ("announceMaxMs", 1...100_000),
        ("announceRounds", 0...1000),                  // QEMU: at most 1000; 0 turns QEMU's announcements off
        ("announceStepMs", 1...10_000),                // QEMU: 1-10000
        ("diskMirrorBackgroundBytesPerSecond", 1...(1 << 40)), // as the memory stream's cap
        ("diskMirrorStallMs", 100...600_000),          // at least a few polls; at most 10 minutes
        ("diskMirrorBufferBytes", (1 << 20)...(1 << 30)), // QEMU's requests are at least 1 MiB; 1 GiB of source RAM per disk at most
        ("linkMbit", 1...1_000_000),                   // link use, and the send buffers at distance; 1 Tbit/s is beyond any link
        ("stripes", 0...16),                           // Protocol.md §6.14: a destination takes 2-16 stripes; 0: by round trip
    ]

    /// Throws for the first field outside `allowedRanges`, or a combination that cannot work.
    public func validate() throws(MigrationSettingsError) {
        let values: [String: Int64?] = [
            "downtimeLimitMs": downtimeLimitMs, "maxBandwidthBytesPerSecond": maxBandwidthBytesPerSecond,
            "multifdChannels": multifdChannels.map(Int64.init), "xbzrleCacheBytes": xbzrleCacheBytes,
            "postcopyAfterPasses": postcopyAfterPasses.map(Int64.init),
            "throttleInitialPercent": Int64(throttleInitialPercent), "throttleIncrementPercent": Int64(throttleIncrementPercent),
            "throttleMaxPercent": Int64(throttleMaxPercent), "announceInitialMs": announceInitialMs, "announceMaxMs": announceMaxMs,
            "announceRounds": announceRounds, "announceStepMs": announceStepMs,
            "diskMirrorBackgroundBytesPerSecond": diskMirrorBackgroundBytesPerSecond, "diskMirrorStallMs": diskMirrorStallMs,
            "diskMirrorBufferBytes": diskMirrorBufferBytes, "linkMbit": linkMbit, "stripes": stripes,
        ]
        for (field, range) in Self.allowedRanges {
            if let value = values[field] ?? nil, !range.contains(value) { throw .outOfRange(field: field, value: value, allowed: range) }
        }
        if postcopyAfterPasses != nil, !postcopyAllowed { throw .postcopyAfterWithoutPostcopy }
        if postcopyAllowed, let stripes, stripes != 1 { throw .stripesWithPostcopy(stripes) }
        // QEMU 9.0 and later refuse these capabilities together at `migrate-set-capabilities`.
        if let channels = multifdChannels, xbzrleCacheBytes != nil { throw .multifdWith(channels: channels, other: .xbzrle) }
        if let channels = multifdChannels, postcopyAllowed { throw .multifdWith(channels: channels, other: .postcopy) }
        if throttleInitialPercent > throttleMaxPercent { throw .throttleAboveMaximum(initial: throttleInitialPercent, maximum: throttleMaxPercent) }
        if announceInitialMs > announceMaxMs { throw .announceAboveMaximum(initial: announceInitialMs, maximum: announceMaxMs) }
    }
}

/// `MigrationSettings` that QEMU would refuse or that cannot work, naming the field and the range.
public enum MigrationSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A field outside `MigrationSettings.allowedRanges`.
    case outOfRange(field: String, value: Int64, allowed: ClosedRange<Int64>)
    /// `postcopyAfterPasses` without `postcopyAllowed`.
    case postcopyAfterWithoutPostcopy
    /// Striping with post-copy: after the switch the guest runs on the destination, and a cut
    /// on any stripe (or a page waiting behind the reordering) would cost it (Protocol.md §6.14).
    case stripesWithPostcopy(Int64)
    /// Multifd with a capability QEMU does not combine with it.
    case multifdWith(channels: Int, other: MultifdConflict)

    /// What QEMU (9.0 and later) refuses beside multifd.
    public enum MultifdConflict: String, Sendable {
        case xbzrle = "settings.xbzrleCacheBytes (--xbzrle-cache-mb)"
        case postcopy = "settings.postcopyAllowed (--postcopy)"
    }
    /// The first throttle step above the ceiling.
    case throttleAboveMaximum(initial: Int, maximum: Int)
    /// The first announcement gap above the largest.
    case announceAboveMaximum(initial: Int64, maximum: Int64)

    public var description: String {
        switch self {
        case let .outOfRange(field, value, allowed):
            return "settings.\(field) is \(value), outside the allowed \(allowed.lowerBound)...\(allowed.upperBound)"
        case .postcopyAfterWithoutPostcopy:
            return "settings.postcopyAfterPasses needs settings.postcopyAllowed = true (--postcopy)"
        case let .stripesWithPostcopy(stripes):
            return "settings.stripes is \(stripes) with settings.postcopyAllowed: a striped stream cannot carry post-copy (a cut on any stripe after the switch would lose the guest); use --stripes 1 or drop --postcopy"
        case let .multifdWith(channels, other):
            return "settings.multifdChannels (--multifd) is \(channels) with \(other.rawValue), which QEMU does not combine with multifd: drop one of the two"
        case let .throttleAboveMaximum(initial, maximum):
            return "settings.throttleInitialPercent (\(initial)) is above settings.throttleMaxPercent (\(maximum)): lower the first or raise the second"
        case let .announceAboveMaximum(initial, maximum):
            return "settings.announceInitialMs (\(initial)) is above settings.announceMaxMs (\(maximum)): lower the first or raise the second"
        }
    }
}
