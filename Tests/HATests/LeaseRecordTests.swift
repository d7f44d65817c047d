import HA
import Testing

/// The lease file format (Protocol.md §9.2): round trip, and every damaged or foreign file
/// refused with its path.
struct LeaseRecordTests {
    let path = "/shared/vms/5f0c.lease"

    @Test func roundTripAndTheDocumentedVector() throws {
        let record = LeaseRecord(vm: "5f0c", owner: "node-a", epoch: 7, counter: 1234)
        let text = String(decoding: record.encoded, as: UTF8.self)
        // The test vector of Protocol.md §9.2.
        #expect(text == "hostmesh-lease 1\nvm 5f0c\nowner node-a\nepoch 7\ncounter 1234\nstate held\ncrc32 " + Self.vectorCRC + "\n")
        #expect(try LeaseRecord(parsing: record.encoded, path: path, vm: "5f0c") == record)
        var released = record
        released.held = false
        #expect(try LeaseRecord(parsing: released.encoded, path: path, vm: "5f0c") == released)
    }

    static let vectorCRC = "793d4314"

    /// A migration's destination before the commit (Protocol.md §9.2, second vector).
    @Test func anIncomingLeaseRoundTripsAndMatchesItsVector() throws {
        let record = LeaseRecord(vm: "5f0c", owner: "node-b", epoch: 8, counter: 1, incoming: true)
        #expect(record.held && record.incoming && record.stateName == "incoming")
        let text = String(decoding: record.encoded, as: UTF8.self)
        #expect(text == "hostmesh-lease 1\nvm 5f0c\nowner node-b\nepoch 8\ncounter 1\nstate incoming\ncrc32 8b72219c\n")
        #expect(try LeaseRecord(parsing: record.encoded, path: path, vm: "5f0c") == record)
        // Released wins: a released lease is never incoming.
        #expect(LeaseRecord(vm: "5f0c", owner: "node-b", epoch: 8, counter: 2, held: false, incoming: true).stateName == "released")
    }

    @Test func aLeaseOfAnotherVMIsRefusedWithThePath() {
        let other = LeaseRecord(vm: "9999", owner: "node-a", epoch: 7, counter: 1).encoded
        #expect(throws: LeaseFileError.otherVM(path: path, expected: "5f0c", found: "9999")) {
            try LeaseRecord(parsing: other, path: path, vm: "5f0c")
        }
    }

    @Test(arguments: ["flipped byte", "torn", "empty", "not a lease", "bad epoch", "too long"])
    func aDamagedLeaseIsRefusedWithThePath(_ damage: String) {
        var bytes = LeaseRecord(vm: "5f0c", owner: "node-a", epoch: 7, counter: 1234).encoded
        switch damage {
        case "flipped byte": bytes[20] ^= 0x01
        case "torn": bytes = Array(bytes.prefix(30))
        case "empty": bytes = []
        case "not a lease": bytes = Array("#!/bin/sh\necho hi\n".utf8)
        case "bad epoch":
            let body = "hostmesh-lease 1\nvm 5f0c\nowner node-a\nepoch -3\ncounter 1\nstate held\n"
            let hex = String(Self.crc(Array(body.utf8)), radix: 16)
            bytes = Array((body + "crc32 " + String(repeating: "0", count: 8 - hex.count) + hex + "\n").utf8)
        default: bytes = Array(repeating: 0x41, count: 600)
        }
        do {
            _ = try LeaseRecord(parsing: bytes, path: path, vm: "5f0c")
            Issue.record("\(damage): accepted")
        } catch {
            guard case let .corrupt(found, reason) = error else {
                Issue.record("\(damage): \(error)")
                return
            }
            #expect(found == path && !reason.isEmpty)
            #expect(error.description.contains(path))
        }
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
