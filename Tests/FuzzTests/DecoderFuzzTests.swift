@testable import ControlAPI
import Foundation
@testable import Hypervisor
import Membership
import MeshIdentity
import MeshWire
import NIOCore
import Testing
import VirtualSwitch

/// Seeded fuzzing of every decoder that reads bytes another party controls, beyond the secure
/// channel's own (Tests/SecureChannelTests/DecoderFuzzTests): gossip datagrams and push-pull
/// state, overlay headers, Ethernet/ARP/IP frames, port state and locations, certificates, QMP
/// replies and control-API requests. Each input must end in a typed error or a value: never a
/// crash, a trap or a hang. `make test` runs a bounded number per decoder;
/// `make fuzz` (HOSTMESH_FUZZ_ITERATIONS) runs many more. The seed is printed for replay
/// (HOSTMESH_FUZZ_SEED).
@Suite struct DecoderFuzzTests {
    static let environment = ProcessInfo.processInfo.environment
    static let iterations = Int(environment["HOSTMESH_FUZZ_ITERATIONS"] ?? "") ?? 3000
    static let seed = UInt64(environment["HOSTMESH_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)

    /// Flips, truncates, extends, splices, repeats or replaces the input.
    static func mutate(_ input: [UInt8], _ rng: inout SeededRandomGenerator) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<7, using: &rng) {
        case 0 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...8, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
        case 1:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
        case 2:
            bytes += (0..<Int.random(in: 1...128, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 3 where bytes.count > 2:
            let cut = Int.random(in: 1..<bytes.count, using: &rng)
            bytes = Array(bytes[cut...] + bytes[..<cut])
        case 4 where !bytes.isEmpty:
            // Extreme values where lengths and counts usually are.
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            bytes[at] = [0x00, 0x7F, 0x80, 0xFF].randomElement(using: &rng)!
        case 5:
            bytes = Array(repeating: bytes, count: Int.random(in: 2...4, using: &rng)).flatMap { $0 }
        default:
            bytes = (0..<Int.random(in: 0...400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        return bytes
    }

    /// Feeds `iterations` mutants of the corpus to `decode`; returns how many decoded.
    @discardableResult
    static func fuzz(_ name: String, corpus: [[UInt8]], _ decode: ([UInt8]) -> Bool) -> Int {
        // One stream per decoder, derived from the seed and the decoder's name (FNV-1a), so adding
        // a decoder does not change what the others see.
        var rng = SeededRandomGenerator(seed: name.utf8.reduce(seed ^ 0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
        var decoded = 0
        for round in 0..<iterations {
            let input = round < corpus.count ? corpus[round] : mutate(corpus[round % corpus.count], &rng)
            if decode(input) { decoded += 1 }
        }
        print("fuzz \(name): \(iterations) inputs, \(decoded) decoded (seed \(seed))")
        return decoded
    }

    @Test func gossipDecoders() {
        let datagram = GossipDatagram(sender: "node-1", primary: .ping(sequence: 9, target: "node-2"))
        let corpus = [GossipCodec.encode(datagram), GossipCodec.encode(GossipDatagram(sender: "s", primary: .ack(sequence: 5)))]
        let decoded = Self.fuzz("gossip datagram", corpus: corpus) { (try? GossipCodec.decodeDatagram($0)) != nil } // an error is the expected outcome
        #expect(decoded >= corpus.count, "the valid corpus did not decode (seed \(Self.seed))")
        Self.fuzz("push-pull state", corpus: corpus) { (try? GossipCodec.decodePushPullState($0)) != nil } // as above
    }

    @Test func overlayAndFrameDecoders() {
        var header = ByteBuffer()
        OverlayHeader(kind: .frame, flags: 0, keyID: 1, segment: 7, senderTag: 42, counter: 9).write(to: &header)
        var arp = [UInt8](repeating: 0xFF, count: 6) + [2, 0, 0, 0, 0, 1] + [0x08, 0x06]
        arp += [0, 1, 8, 0, 6, 4, 0, 1] + [2, 0, 0, 0, 0, 1] + [10, 0, 0, 1] + [0, 0, 0, 0, 0, 0] + [10, 0, 0, 2]
        var ipv4 = [UInt8](repeating: 0x02, count: 12) + [0x08, 0x00]
        ipv4 += [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2] + [0x1F, 0x90, 0x00, 0x50] + [UInt8](repeating: 0, count: 16)
        Self.fuzz("overlay header", corpus: [Array(header.readableBytesView)]) { (try? OverlayHeader(parsing: ByteBuffer(bytes: $0))) != nil } // errors expected
        Self.fuzz("ethernet/arp/ip", corpus: [arp, ipv4]) { bytes in
            let buffer = ByteBuffer(bytes: bytes)
            guard let frame = EthernetHeader(buffer) else { return false }
            _ = ARPPacket(frame: buffer)
            _ = IPPacketInfo(frame: buffer, etherType: frame.etherType)
            return true
        }
    }

    @Test func portStateDecoders() {
        let location = MACLocation(mac: MACAddress(rawValue: 0x0200_0000_0001), segment: 7, host: "node-a", sequence: 3)
        let corpus = [OverlayControlCodec.encode([location]), OverlayControlCodec.encode([])]
        Self.fuzz("locations", corpus: corpus) { (try? OverlayControlCodec.decode($0)) != nil } // errors expected
        var record = Hostmesh_V1_VSwitchPortState()
        record.version = PortStateRecord.formatVersion
        record.portID = "vm-1/nic0"
        record.mac = Data([2, 0, 0, 0, 0, 1])
        record.generation = 4
        record.network = "default"
        var delta = Hostmesh_V1_VSwitchPortStateDelta()
        delta.version = PortStateRecord.formatVersion
        delta.portID = "vm-1/nic0"
        let records = [(try? record.serializedBytes()) ?? [], (try? delta.serializedBytes()) ?? []] // proto3 encoding cannot fail
        let decodedRecords = Self.fuzz("port state", corpus: records) { (try? PortStateRecord(serializedBytes: $0)) != nil } // errors expected
        #expect(decodedRecords >= 1, "the valid port state record did not decode")
        Self.fuzz("port state delta", corpus: records.reversed()) { (try? PortStateDelta(serializedBytes: $0)) != nil } // errors expected
    }

    @Test func certificateDecoder() throws {
        let domain = try DomainAuthority(name: "lab")
        let identity = try HostIdentity(hostID: "node-a")
        let now = Int64(Date().timeIntervalSince1970)
        let certificate = domain.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        let decoded = Self.fuzz("certificate", corpus: [certificate.serialized]) { (try? HostCertificate(serialized: $0)) != nil } // errors expected
        #expect(decoded >= 1)
    }

    @Test func qmpReplies() {
        let lines = [#"{"return": {"status": "running", "running": true}, "id": 3}"#,
                     #"{"error": {"class": "GenericError", "desc": "no"}, "id": "x"}"#,
                     #"{"event": "MIGRATION", "data": {"status": "completed"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#,
                     #"{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}"#].map { Array($0.utf8) }
        let decoded = Self.fuzz("qmp line", corpus: lines) { (try? QMPInbound.parse(line: Data($0))) != nil } // errors expected
        #expect(decoded >= lines.count)
    }

    @Test func controlRequests() {
        let lines = [#"{"method":"vm.console","params":{"vm":"x","lines":10}}"#,
                     #"{"method":"migrate","params":{"vm":"x","to":"10.0.0.2:7946","settings":{}}}"#,
                     #"{"method":"vm.resolve","params":{"vm":"x","action":"resume-here","destinationFenced":true}}"#].map { Array($0.utf8) }
        Self.fuzz("control request", corpus: lines) { bytes in
            let line = Data(bytes)
            guard let head = try? JSONDecoder().decode(RequestHead.self, from: line) else { return false } // refused as bad_request
            let request = ControlRequest(method: head.method, line: line)
            _ = try? request.params(ControlTypes.Console.self) // each either decodes and validates or is a bad_request
            _ = try? request.params(ControlTypes.Migrate.self) // as above
            _ = try? request.params(ControlTypes.Resolve.self) // as above
            return true
        }
    }
}
