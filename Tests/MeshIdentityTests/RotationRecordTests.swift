import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Key rotation records (Protocol.md §2.8): signed by both the old and the new key, for the host
/// and key the channel authenticated, recent; anything else refused naming it.
@Suite struct RotationRecordTests {
    let domain = try! DomainAuthority(name: "lab")
    let now: Int64 = 1_800_000_000

    func setUp() throws -> (old: HostIdentity, new: HostIdentity, held: HostCertificate) {
        let old = try HostIdentity(hostID: "node-2")
        let new = try HostIdentity(hostID: "node-2")
        let held = domain.certify(old.publicKeys, serial: 2, notBefore: now - 60, notAfter: now + 3_600)
        return (old, new, held)
    }

    func refusal(_ record: RotationRecord, _ held: HostCertificate, at time: Int64? = nil) -> String {
        do { try record.verify(against: held, now: time ?? now); return "accepted" } catch { return "\(error)" }
    }

    /// The record with one signature replaced by `garbage`.
    func tampered(_ record: RotationRecord, old: Bool) throws -> RotationRecord {
        var wire = try Hostmesh_V1_RotationRecord(serializedBytes: record.serialized)
        if old { wire.oldSignature = Data(repeating: 1, count: 64) } else { wire.newSignature = Data(repeating: 1, count: 64) }
        return try RotationRecord(serialized: [UInt8](try wire.serializedData()))
    }

    @Test func aRecordSignedByBothKeysForTheAuthenticatedKeyVerifiesAndSurvivesTheWire() throws {
        let (old, new, held) = try setUp()
        let record = try RotationRecord(serialized: RotationRecord(from: old, to: new, domain: "lab", now: now).serialized)
        #expect(refusal(record, held) == "accepted")
        #expect(record.newKeys == new.publicKeys)
    }

    @Test func aRecordSignedByOneKeyOnlyIsRefusedSayingWhichSignatureFailed() throws {
        let (old, new, held) = try setUp()
        let record = RotationRecord(from: old, to: new, domain: "lab", now: now)
        #expect(refusal(try tampered(record, old: true), held).contains("the old key's signature does not verify"))
        #expect(refusal(try tampered(record, old: false), held).contains("the new key's signature does not verify"))
        // A record "signed" by the new key twice: the old key never agreed.
        let stolen = RotationRecord(from: new, to: new, domain: "lab", now: now)
        #expect(refusal(stolen, held).contains("retires another key"))
    }

    @Test func replayedOutOfDateAndForeignRecordsAreRefused() throws {
        let (old, new, held) = try setUp()
        let record = RotationRecord(from: old, to: new, domain: "lab", now: now)
        // Replayed after the rotation: the channel now authenticates the new key.
        let renewed = domain.certify(new.publicKeys, serial: 3, notBefore: now, notAfter: now + 3_600)
        #expect(refusal(record, renewed).contains("retires another key"))
        #expect(refusal(record, held, at: now + 2 * 86_400).contains("out of date"))
        #expect(refusal(record, held, at: now - 3_600).contains("in the future"))
        // For another host.
        let other = try HostIdentity(hostID: "node-3")
        let otherHeld = domain.certify(other.publicKeys, serial: 4, notBefore: now - 60, notAfter: now + 3_600)
        #expect(refusal(record, otherHeld).contains("the rotation record is for node-2@lab, but the channel authenticated node-3@lab"))
        #expect(throws: IdentityError.self) { try RotationRecord(serialized: [0xff, 0x00]) }
    }
}
