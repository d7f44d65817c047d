import Foundation
import Hypervisor
import Testing

/// The builder the agent runs for `vm.create` (and the benchmarks): options in, a checked spec out.
@Suite("VM spec builder")
struct VMSpecOptionsTests {
    let id = "3f2a9c1e-0000-4000-8000-000000000000"

    func options() -> VMSpecOptions {
        var o = VMSpecOptions(name: "web", kernel: "/guest/kernel")
        o.initrd = "/guest/initrd.img"
        return o
    }

    @Test func defaultsMatchTheCommandLine() throws {
        let spec = try options().spec(id: id)
        #expect(spec.id == id && spec.name == "web" && spec.vcpus == 1 && spec.memoryMiB == 256)
        #expect(spec.boot == .kernel(path: "/guest/kernel", initrd: "/guest/initrd.img", commandLine: "console=ttyS0 quiet"))
        #expect(spec.nics.isEmpty && spec.disks.isEmpty && spec.extraKernelArguments.isEmpty)
        #expect(spec.accelerator == .auto)
    }

    @Test func nicGetsDerivedMACSingleAddressAndGuestArguments() throws {
        var o = options()
        o.network = "default"
        o.ip = "10.77.0.2/24"
        o.workload = "heartbeat,echo:7"
        let spec = try o.spec(id: id)
        #expect(spec.nics == [VMSpec.NIC(id: "net0", mac: "52:54:00:3f:2a:9c", attachment: .none, network: "default",
                                         addresses: ["10.77.0.2/32"], ingress: nil, egress: nil)])
        #expect(spec.extraKernelArguments == ["hm.work=heartbeat,echo:7", "hm.ip=10.77.0.2/24"])
    }

    @Test func ipv6AddressIsASlash128() throws {
        var o = options()
        o.network = "default"
        o.ip = "fd00::2/64"
        #expect(try o.spec(id: id).nics[0].addresses == ["fd00::2/128"])
    }

    @Test func givenMACWins() throws {
        var o = options()
        o.network = "default"
        o.mac = "52:54:00:12:34:56"
        #expect(try o.spec(id: id).nics[0].mac == "52:54:00:12:34:56")
    }

    @Test func derivedMACIsStableAndUnicastForAnyID() {
        #expect(VMSpec.NIC.derivedMAC(vmID: id) == "52:54:00:3f:2a:9c")
        for odd in ["", "vm", "zzzzzzzz", "server"] {
            let mac = VMSpec.NIC.derivedMAC(vmID: odd)
            #expect(mac == VMSpec.NIC.derivedMAC(vmID: odd))
            #expect(mac.hasPrefix("52:54:00:") && mac.count == 17, "\(odd) → \(mac)")
        }
    }

    @Test func firewallRules() throws {
        var o = options()
        o.network = "default"
        #expect(try o.spec(id: id).nics[0].ingress == nil) // nothing given: everything allowed
        o.ingress = ["none"]
        o.egress = ["tcp:80", "udp:53@10.0.0.0/8"]
        let nic = try o.spec(id: id).nics[0]
        #expect(nic.ingress == [] && nic.egress == ["tcp:80", "udp:53@10.0.0.0/8"])
        o.ingress = ["none", "tcp:22"]
        #expect(throws: VMSpecError.contradictoryRules(field: "ingress")) { try o.spec(id: id) }
    }

    @Test func diskFormatFollowsTheSuffix() throws {
        var o = options()
        o.disks = ["/srv/a.qcow2", "/srv/b.img"]
        o.sharedStorage = true
        #expect(try o.spec(id: id).disks == [VMSpec.Disk(path: "/srv/a.qcow2", format: .qcow2, shared: true),
                                             VMSpec.Disk(path: "/srv/b.img", format: .raw, shared: true)])
    }

    @Test func refusals() {
        func refused(_ change: (inout VMSpecOptions) -> Void) -> VMSpecError? {
            var o = options()
            change(&o)
            do { _ = try o.spec(id: id); return nil } catch { return error }
        }
        #expect(refused { $0.kernel = "guest/kernel" } == .relativePath(field: "kernel", path: "guest/kernel"))
        #expect(refused { $0.disks = ["a.img"] } == .relativePath(field: "disk", path: "a.img"))
        #expect(refused { $0.ingress = ["tcp:22"] } == .needsNetwork(field: "ingress"))
        #expect(refused { $0.ip = "10.0.0.2/24" } == .needsNetwork(field: "ip"))
        #expect(refused { $0.network = "default"; $0.ip = "10.0.0.300" } == .invalidAddress("10.0.0.300"))
        #expect(refused { $0.network = "default"; $0.ip = "10.0.0.3/33" } == .invalidAddress("10.0.0.3/33"))
        #expect(refused { $0.workload = "heartbeat quiet" } == .invalidWorkload("heartbeat quiet"))
        #expect(refused { $0.memoryMiB = -1 } == .invalidMemory(-1))
        #expect(refused { $0.memoryMiB = Int.max } == .invalidMemory(Int.max))
        #expect(refused { $0.vcpus = 0 } == .invalidVCPUs(0))
        #expect(refused { $0.network = "default"; $0.mac = "01:00:5e:00:00:01" } == .invalidMAC(nic: "net0", mac: "01:00:5e:00:00:01"))
    }

    @Test func decodingDefaultsEverythingButNameAndKernel() throws {
        let o = try JSONDecoder().decode(VMSpecOptions.self, from: Data(#"{"name":"web","kernel":"/k"}"#.utf8))
        #expect(o == VMSpecOptions(name: "web", kernel: "/k"))
        let roundTrip = try JSONDecoder().decode(VMSpecOptions.self, from: JSONEncoder().encode(options()))
        #expect(roundTrip == options())
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(VMSpecOptions.self, from: Data(#"{"name":"web","kernel":"/k","accelerator":"hvf"}"#.utf8))
        }
    }
}

@Suite("Migration settings ranges")
struct MigrationSettingsValidationTests {
    @Test func defaultsAreValid() throws {
        try MigrationSettings().validate()
    }

    @Test func absurdValuesNameTheField() {
        func refused(_ change: (inout MigrationSettings) -> Void) -> MigrationSettingsError? {
            var s = MigrationSettings()
            change(&s)
            do { try s.validate(); return nil } catch { return error }
        }
        #expect(refused { $0.downtimeLimitMs = -1 } == .outOfRange(field: "downtimeLimitMs", value: -1, allowed: 1...2_000_000))
        #expect(refused { $0.maxBandwidthBytesPerSecond = 0 } == .outOfRange(field: "maxBandwidthBytesPerSecond", value: 0, allowed: 1...(1 << 40)))
        #expect(refused { $0.multifdChannels = 0 } == .outOfRange(field: "multifdChannels", value: 0, allowed: 1...255))
        #expect(refused { $0.xbzrleCacheBytes = .max } == .outOfRange(field: "xbzrleCacheBytes", value: .max, allowed: 4096...(1 << 40)))
        #expect(refused { $0.postcopyAllowed = true; $0.postcopyAfterPasses = -3 } == .outOfRange(field: "postcopyAfterPasses", value: -3, allowed: 0...1000))
        #expect(refused { $0.postcopyAfterPasses = 2 } == .postcopyAfterWithoutPostcopy)
        #expect(refused { $0.postcopyAllowed = true; $0.stripes = 8 } == .stripesWithPostcopy(8))
        #expect(refused { $0.postcopyAllowed = true; $0.stripes = 0 } == .stripesWithPostcopy(0))
        #expect(refused { $0.postcopyAllowed = true; $0.stripes = 1 } == nil)
        #expect(refused { $0.multifdChannels = 4; $0.xbzrleCacheBytes = 64 << 20 } == .multifdWith(channels: 4, other: .xbzrle))
        #expect(refused { $0.multifdChannels = 4; $0.postcopyAllowed = true } == .multifdWith(channels: 4, other: .postcopy))
        #expect(refused { $0.multifdChannels = 4 } == nil)
        #expect(refused { $0.throttleInitialPercent = 100 } == .outOfRange(field: "throttleInitialPercent", value: 100, allowed: 1...99))
        #expect(refused { $0.throttleInitialPercent = 50; $0.throttleMaxPercent = 40 } == .throttleAboveMaximum(initial: 50, maximum: 40))
        #expect(refused { $0.announceStepMs = 0 } == .outOfRange(field: "announceStepMs", value: 0, allowed: 1...10_000))
        #expect(refused { $0.diskMirrorBufferBytes = 4096 } == .outOfRange(field: "diskMirrorBufferBytes", value: 4096, allowed: (1 << 20)...(1 << 30)))
        #expect(refused { $0.diskMirrorBufferBytes = 64 << 20 } == nil)
        #expect(refused { $0.postcopyAllowed = true; $0.postcopyAfterPasses = 0 } == nil) // 0: post-copy after the first pass
    }
}
