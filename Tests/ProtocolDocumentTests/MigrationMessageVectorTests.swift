import MeshWire
@testable import Migration
import NIOCore
import Testing

/// Protocol.md §14.10: the hellos that open an `nbd-stream` channel and a stripe, and the disk
/// descriptions of a prepare, as the code encodes them and as the §13.4 field numbers give them.
@Suite struct MigrationMessageVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.10 Stream hellos and disk descriptions") }

    static func disk0() -> Hostmesh_V1_DiskImage {
        var disk = Hostmesh_V1_DiskImage()
        disk.index = 0
        disk.format = "qcow2"
        disk.virtualSize = 1 << 30
        disk.thin = true
        disk.allocatedBytes = 196_608
        return disk
    }

    static func disk1() -> Hostmesh_V1_DiskImage {
        var disk = Hostmesh_V1_DiskImage()
        disk.index = 1
        disk.format = "raw"
        disk.virtualSize = 1 << 30
        disk.allocatedBytes = 1 << 30
        return disk
    }

    @Test func theCodeEncodesTheDocumentedMessages() throws {
        var hello = StreamHello.frame(migrationID: "m-1", streamIndex: 1)
        expectHex(hello.readBytes(length: hello.readableBytes) ?? [], vector, "hello", by: "the code")
        var stripe = StreamHello.frame(migrationID: "m-1", streamIndex: 0, stripe: (2, 4))
        expectHex(stripe.readBytes(length: stripe.readableBytes) ?? [], vector, "stripe_hello", by: "the code")
        expectHex(try Self.disk0().serializedBytes(), vector, "disk0", by: "the code")
        expectHex(try Self.disk1().serializedBytes(), vector, "disk1", by: "the code")
        var prepare = Hostmesh_V1_MigrationPrepare()
        prepare.migrationID = "m-1"
        prepare.disks = [Self.disk0(), Self.disk1()]
        expectHex(try prepare.serializedBytes(), vector, "prepare", by: "the code")
    }

    @Test func theFieldNumbersGiveTheDocumentedMessages() throws {
        func framed(_ hello: ProtobufWriter) -> [UInt8] {
            var envelope = ProtobufWriter()
            envelope.bytes(4, hello.bytes, always: true)
            return ProtobufWriter.u32(UInt32(envelope.bytes.count)) + envelope.bytes
        }
        var hello = ProtobufWriter()
        hello.string(1, "m-1")
        hello.uint(2, 1)
        expectHex(framed(hello), vector, "hello", by: "the §13.4 field numbers")
        var stripe = ProtobufWriter()
        stripe.string(1, "m-1")
        stripe.uint(40, 2)
        stripe.uint(41, 4)
        expectHex(framed(stripe), vector, "stripe_hello", by: "the §13.4 field numbers")
        var disk0 = ProtobufWriter()
        disk0.string(2, "qcow2")
        disk0.uint(3, 1 << 30)
        disk0.bool(4, true)
        disk0.uint(5, 196_608)
        expectHex(disk0.bytes, vector, "disk0", by: "the §13.4 field numbers")
        var disk1 = ProtobufWriter()
        disk1.uint(1, 1)
        disk1.string(2, "raw")
        disk1.uint(3, 1 << 30)
        disk1.uint(5, 1 << 30)
        expectHex(disk1.bytes, vector, "disk1", by: "the §13.4 field numbers")
        var prepare = ProtobufWriter()
        prepare.string(1, "m-1")
        prepare.bytes(7, disk0.bytes, always: true)
        prepare.bytes(7, disk1.bytes, always: true)
        expectHex(prepare.bytes, vector, "prepare", by: "the §13.4 field numbers")
    }
}
