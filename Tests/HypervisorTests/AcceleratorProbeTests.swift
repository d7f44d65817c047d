import Foundation
import Hypervisor
import Testing

@Suite("Accelerator probe", .qemuInstalled, .timeLimit(.minutes(1)))
struct AcceleratorProbeTests {
    @Test func missingKVMDeviceMeansTCGWithTheReason() async throws {
        var configuration = AcceleratorProbe.Configuration()
        configuration.kvmDevice = "/nonexistent/kvm"
        let probe = AcceleratorProbe(configuration: configuration)
        let verdict = try await probe.resolve(.auto, binary: TestSupport.resolveQEMU(), guest: nil)
        #expect(verdict.choice == .tcg)
        #expect(verdict.reason.contains("/nonexistent/kvm does not exist"))
        await #expect(throws: HypervisorError.self) {
            try await probe.resolve(.kvm, binary: TestSupport.resolveQEMU(), guest: nil)
        }
        #expect(try await probe.resolve(.tcg, binary: TestSupport.resolveQEMU(), guest: nil).choice == .tcg)
    }

    @Test func withoutAProbeKernelAutoCannotVerifyKVM() async throws {
        guard FileManager.default.fileExists(atPath: "/dev/kvm") else { return }
        let verdict = try await AcceleratorProbe().resolve(.auto, binary: TestSupport.resolveQEMU(), guest: nil)
        #expect(verdict.choice == .tcg)
        #expect(verdict.reason.contains("no probe kernel"))
    }

    /// Whatever this host's KVM does, the probe answers within its budget and says why.
    @Test(.guestBuilt) func probeWithTheTestGuestIsBoundedAndCached() async throws {
        let guest = try #require(TestSupport.guest)
        let probe = AcceleratorProbe()
        let binary = try TestSupport.resolveQEMU()
        let probeGuest = AcceleratorProbe.ProbeGuest(kernel: guest.kernel, initrd: guest.initrd)
        let verdict = try await probe.resolve(.auto, binary: binary, guest: probeGuest)
        print("KVM probe verdict: \(verdict)")
        #expect(!verdict.reason.isEmpty)
        #expect(try await probe.resolve(.auto, binary: binary, guest: probeGuest) == verdict)
        if verdict.choice == .kvm {
            #expect(verdict.reason.contains("booted under KVM"))
        }
    }
}
