import Membership
import MeshTime

/// Builders and directive filters shared by the pure core tests.
enum Fixture {
    static func id(_ index: Int) -> MemberID { MemberID("m\(index)") }
    static func address(_ index: Int) -> PeerAddress { PeerAddress(host: "10.0.0.\(index)", port: 7946) }
    static func at(_ seconds: Double) -> MeshInstant {
        MeshInstant(nanosecondsSinceOrigin: Int64(seconds * 1e9))
    }

    /// Member 0 of a mesh of `count` members, knowing all others as alive at incarnation 0.
    static func instance(
        members count: Int, settings: MembershipSettings = MembershipSettings(), seed: UInt64 = 1
    ) -> MembershipInstance {
        let records = (1..<count).map {
            MemberRecord(id: id($0), address: address($0), status: .alive, incarnation: 0, metadata: nil)
        }
        return MembershipInstance(
            id: id(0), address: address(0), settings: settings, random: SeededRandomGenerator(seed: seed),
            knownMembers: records)
    }

    /// A datagram from member `index`.
    static func datagram(from index: Int, _ primary: GossipPrimaryMessage?, updates: [MemberUpdate] = []) -> GossipDatagram {
        GossipDatagram(sender: id(index), primary: primary, updates: updates)
    }
}

extension Array where Element == MembershipDirective {
    var sends: [(datagram: GossipDatagram, to: PeerAddress, receiver: MemberID)] {
        compactMap { if case .send(let datagram, let to, let receiver) = $0 { return (datagram, to, receiver) } else { return nil } }
    }

    var timers: [(timer: MembershipTimer, at: MeshInstant)] {
        compactMap { if case .schedule(let timer, let at) = $0 { return (timer, at) } else { return nil } }
    }

    var changes: [MemberStatusChange] {
        compactMap { if case .memberChanged(let change) = $0 { return change } else { return nil } }
    }

    var pushPulls: [PushPullRequest] {
        compactMap { if case .pushPull(let request) = $0 { return request } else { return nil } }
    }

    /// The first ping sent, with its sequence, target and destination.
    var firstPing: (sequence: UInt64, target: MemberID, to: PeerAddress, updates: [MemberUpdate])? {
        for (datagram, to, _) in sends {
            if case .ping(let sequence, let target) = datagram.primary {
                return (sequence, target, to, datagram.updates)
            }
        }
        return nil
    }

    var probeTick: (generation: UInt64, at: MeshInstant)? {
        for (timer, at) in timers {
            if case .probeTick(let generation) = timer { return (generation, at) }
        }
        return nil
    }
}
