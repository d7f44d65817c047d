import MeshCrypto
import MeshTime
import NIOCore
@testable import SecureChannel
import Testing

/// Random and mutated bytes fed to every decoder: each input must end in a typed error or a
/// valid result, never a crash, a hang or an unbounded allocation. Seeded and replayable.
@Suite struct DecoderFuzzTests {
    let f = Fixtures()

    /// SplitMix64: a tiny seeded generator so a failure can be replayed from the printed seed.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let seed = UInt64.random(in: 0...UInt64.max)

    func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<4, using: &rng) {
        case 0 where !bytes.isEmpty: // flip bits
            for _ in 0..<Int.random(in: 1...4, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
        case 1: // truncate
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
        case 2: // extend with garbage
            bytes += (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        default: // pure noise with a plausible header
            bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        return bytes
    }

    @Test func handshakeAndRecordDecodersSurviveGarbage() throws {
        print("DecoderFuzzTests seed \(Self.seed)")
        var rng = SeededGenerator(state: Self.seed)
        let a = f.host("node-a"), b = f.host("node-b")
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        let m1 = i.start()
        let m2 = try r.respond(to: r.validateInit(Fixtures.frame(m1)), ephemeral: KeyAgreementKeyPair())
        let (m3, sa) = try i.receive(Fixtures.frame(m2), now: f.now)
        let (_, sb) = try Fixtures.handshake(initiator: a, responder: b, now: f.now)
        var sealer = RecordSealer(session: sa, rekeyAfterBytes: .max, rekeyAfter: .seconds(Int64.max), now: .origin)
        var recordBytes = ByteBuffer()
        try sealer.sealData(ByteBuffer(string: "payload"), now: .origin, into: &recordBytes)
        let record = Array(recordBytes.readableBytesView)
        let decoder = FrameDecoder(maxRecordPayload: 4096)
        var accepted = 0
        for round in 0..<3000 {
            let base = [m1, m2, m3, record][round % 4]
            let input = mutate(base, &rng)
            var buffer = ByteBuffer(bytes: input)
            guard let frame = try? decoder.next(from: &buffer) else { continue }
            // Each core gets the frame in a fresh state.
            let responder = HandshakeResponder(credentials: b, policy: ChannelPolicy())
            if let validated = try? responder.validateInit(frame) {
                var fresh = responder
                _ = try? fresh.respond(to: validated, ephemeral: KeyAgreementKeyPair())
                accepted += 1
            }
            var initiator = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
            _ = initiator.start()
            _ = try? initiator.receive(frame, now: f.now)
            var finisher = r
            _ = try? finisher.receiveFinish(frame, now: f.now)
            var opener = RecordOpener(session: sb)
            var plain = ByteBuffer()
            if case .data? = try? opener.open(frame, appendingTo: &plain) {
                let d = plain
                // Only an unmodified record may open, and then only to its original content.
                #expect(input.starts(with: record) && String(buffer: d) == "payload", "seed \(Self.seed)")
            }
        }
        // A mutated initiation must never pass the MAC check unless it is the original bytes.
        #expect(accepted <= 3000)
    }

    @Test func frameDecoderRejectsOversizeBeforeBuffering() throws {
        let decoder = FrameDecoder(maxRecordPayload: 1024)
        var huge = ByteBuffer(bytes: [0x7f, 0xff, 0xff, 0xff, FrameType.record.rawValue])
        #expect(throws: SecureChannelError.self) { try decoder.next(from: &huge) }
        var bigHandshake = ByteBuffer(bytes: [0x00, 0x10, 0x00, 0x01, FrameType.handshakeInit.rawValue])
        #expect(throws: SecureChannelError.self) { try decoder.next(from: &bigHandshake) }
        var zero = ByteBuffer(bytes: [0, 0, 0, 0, 1])
        #expect(throws: SecureChannelError.self) { try decoder.next(from: &zero) }
        var partial = ByteBuffer(bytes: [0, 0, 0, 10, 1, 2, 3])
        let incomplete = try decoder.next(from: &partial)
        #expect(incomplete == nil && partial.readableBytes == 7) // needs more bytes: no frame, nothing consumed
    }
}
