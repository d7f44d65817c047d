/// An epoch as a peer's message gives it (uint64 on the wire): refused when no real epoch can be
/// that large, so that it and the epochs after it (+1, +2) fit in Int64; never a trap.
public func wireEpoch(_ value: UInt64, _ what: String) throws -> Int64 {
    guard let epoch = Int64(exactly: value), epoch <= maxWireEpoch else {
        throw ControlError.badRequest("\(what) \(value) is not a valid epoch (at most \(maxWireEpoch))")
    }
    return epoch
}

/// The largest epoch a peer may name.
public let maxWireEpoch: Int64 = Int64.max - 16
