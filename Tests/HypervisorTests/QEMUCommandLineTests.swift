import Hypervisor
import Testing

@Suite("QEMU command line")
struct QEMUCommandLineTests {
    let directory = VMRuntimeDirectory(path: "/run/hm/vm1")

    func spec() -> VMSpec {
        VMSpec(id: "vm1", name: "web, primary", vcpus: 2, memoryMiB: 256,
               disks: [.init(path: "/srv/img/web.qcow2", format: .qcow2, shared: true)],
               nics: [
                   .init(id: "net0", mac: "52:54:00:AA:00:01", attachment: .dgram(localPath: "/run/hm/vm1/net0.sock", remotePath: "/run/hm/switch.sock")),
                   .init(id: "net1", mac: "52:54:00:aa:00:02", attachment: .stream(path: "/run/hm/sw-stream.sock")),
               ],
               boot: .kernel(path: "/boot/k", initrd: "/boot/i", commandLine: "console=ttyS0"),
               accelerator: .auto, extraKernelArguments: ["hm.work=heartbeat"])
    }

    @Test func normalStart() throws {
        let argv = try QEMUCommandLine.arguments(for: spec(), in: directory, accelerator: .tcg, memoryKiB: 262152, mode: .boot(paused: false))
        #expect(argv == [
            "-name", "guest=web,, primary,debug-threads=on",
            "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64", "-smp", "2", "-m", "262152k",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", "file,id=serial0,path=/run/hm/vm1/console.log", "-serial", "chardev:serial0",
            "-qmp", "unix:/run/hm/vm1/qmp.sock,server=on,wait=off",
            "-pidfile", "/run/hm/vm1/qemu.pid",
            "-msg", "timestamp=on",
            "-blockdev", "driver=file,filename=/srv/img/web.qcow2,node-name=disk0-file,read-only=off",
            "-blockdev", "driver=qcow2,file=disk0-file,node-name=disk0,read-only=off",
            "-device", "virtio-blk-pci,drive=disk0,id=disk0-dev",
            "-netdev", "dgram,id=net0,local.type=unix,local.path=/run/hm/vm1/net0.sock,remote.type=unix,remote.path=/run/hm/switch.sock",
            "-device", "virtio-net-pci,id=net0-dev,mac=52:54:00:aa:00:01,romfile=,netdev=net0",
            "-netdev", "stream,id=net1,server=off,addr.type=unix,addr.path=/run/hm/sw-stream.sock",
            "-device", "virtio-net-pci,id=net1-dev,mac=52:54:00:aa:00:02,romfile=,netdev=net1",
            "-kernel", "/boot/k", "-initrd", "/boot/i", "-append", "console=ttyS0 hm.work=heartbeat",
        ])
    }

    @Test func incomingStartDefersTheURIAndOtherwiseMatches() throws {
        let boot = try QEMUCommandLine.arguments(for: spec(), in: directory, accelerator: .kvm, memoryKiB: 262144, mode: .boot(paused: false))
        let incoming = try QEMUCommandLine.arguments(for: spec(), in: directory, accelerator: .kvm, memoryKiB: 262144, mode: .incoming)
        #expect(incoming == boot + ["-incoming", "defer", "-S"])
        #expect(incoming.contains("kvm"))
        #expect(incoming.contains("256M"))
    }

    @Test func onlyTheDisksGivenOpenWithDirectIO() throws {
        var spec = spec()
        spec.disks.append(.init(path: "/mnt/tmpfs/scratch.raw", format: .raw, shared: false))
        let argv = try QEMUCommandLine.arguments(for: spec, in: directory, accelerator: .tcg, memoryKiB: 262144, mode: .incoming, directIO: [0])
        #expect(argv.contains("driver=file,filename=/srv/img/web.qcow2,node-name=disk0-file,read-only=off,cache.direct=on"))
        #expect(argv.contains("driver=file,filename=/mnt/tmpfs/scratch.raw,node-name=disk1-file,read-only=off"))
    }

    @Test func pausedStartAndDiskBoot() throws {
        var spec = spec()
        spec.boot = .disk
        let argv = try QEMUCommandLine.arguments(for: spec, in: directory, accelerator: .tcg, memoryKiB: 262144, mode: .boot(paused: true))
        #expect(argv.last == "-S")
        #expect(argv.contains("virtio-blk-pci,drive=disk0,id=disk0-dev,bootindex=0"))
        #expect(!argv.contains("-kernel"))
    }

    @Test func invalidSpecsAreRejectedWithTheField() {
        var bad = spec()
        bad.nics[1].mac = "01:00:5e:00:00:01"
        #expect(throws: VMSpecError.invalidMAC(nic: "net1", mac: "01:00:5e:00:00:01")) {
            try QEMUCommandLine.arguments(for: bad, in: directory, accelerator: .tcg, memoryKiB: 262144, mode: .incoming)
        }
        bad = spec()
        bad.id = "../etc"
        #expect(throws: VMSpecError.invalidID("../etc")) { try bad.validate() }
        bad = spec()
        bad.nics[1].id = "net0"
        #expect(throws: VMSpecError.duplicateNICID("net0")) { try bad.validate() }
        bad = spec()
        bad.boot = .disk
        bad.disks = []
        #expect(throws: VMSpecError.noBootDisk) { try bad.validate() }
        #expect(VMSpecError.invalidMemory(8).description.contains("at least 16 MiB"))
    }

    @Test func specRoundTripsThroughJSON() throws {
        let data = try JSONEncoder().encode(spec())
        #expect(try JSONDecoder().decode(VMSpec.self, from: data) == spec())
    }
}

import Foundation
