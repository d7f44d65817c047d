@testable import Agent
import ControlAPI
import Hypervisor
import Logging
import Testing

/// Defaults that start on a real host (issue: real hosts): wildcard listeners advertise the
/// default route's address, or the only one; an ambiguous choice is refused with the candidates.
@Suite struct AdvertiseAddressTests {
    let eth0 = HostAddresses.Address(interface: "eth0", address: "10.9.0.1", isIPv6: false)
    let eth1 = HostAddresses.Address(interface: "eth1", address: "192.168.7.2", isIPv6: false)
    let lo = HostAddresses.Address(interface: "lo", address: "127.0.0.1", isIPv6: false)
    let v6 = HostAddresses.Address(interface: "eth0", address: "fd00::1", isIPv6: true)
    let linkLocal = HostAddresses.Address(interface: "eth0", address: "fe80::1", isIPv6: true)

    @Test func theDefaultRoutesInterfaceWins() {
        #expect(HostAddresses.choose(from: [lo, eth0, eth1], defaultRouteInterface: "eth1") == .success(eth1))
    }

    @Test func theOnlyAddressIsChosenWithoutARoute() {
        #expect(HostAddresses.choose(from: [lo, linkLocal, eth0, v6], defaultRouteInterface: nil) == .success(eth0))
        #expect(HostAddresses.choose(from: [lo, v6], defaultRouteInterface: nil) == .success(v6))
    }

    @Test func anAmbiguousChoiceNamesTheCandidatesAndTheOption() {
        let result = HostAddresses.choose(from: [lo, eth0, eth1], defaultRouteInterface: nil)
        #expect(result == .failure(.ambiguous([eth0, eth1])))
        if case .failure(let error) = result {
            #expect(error.description.contains("10.9.0.1 (eth0)") && error.description.contains("--advertise"))
        }
        #expect(HostAddresses.choose(from: [lo], defaultRouteInterface: "lo") == .failure(.none))
    }

    @Test func theRouteTableIsRead() {
        let table = """
        Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
        eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
        """
        #expect(HostAddresses.defaultRouteInterface(table: table) == "eth0")
        #expect(HostAddresses.defaultRouteInterface(table: String(table.split(separator: "\n").prefix(2).joined(separator: "\n"))) == nil)
        // This machine: whatever it has, it reads without trapping, and loopback is there.
        #expect(HostAddresses.current().contains { $0.address == "127.0.0.1" })
    }

    @Test func wildcardListenersGetTheChosenAddressAndExplicitOnesNothing() throws {
        let logger = Logger(label: "test")
        let defaults = AgentConfiguration()
        let resolved = try defaults.resolvingAdvertiseHost(logger: logger) { .success(eth0) }
        #expect(resolved.advertiseHost == "10.9.0.1")
        #expect(throws: AgentError.self) { try defaults.resolvingAdvertiseHost(logger: logger) { .failure(.ambiguous([eth0, eth1])) } }
        var explicit = defaults
        explicit.advertiseHost = "10.0.0.9"
        #expect(try explicit.resolvingAdvertiseHost(logger: logger) { .failure(.none) }.advertiseHost == "10.0.0.9")
        var loopback = defaults
        loopback.channelListen = HostPort(host: "127.0.0.1", port: 7946)
        loopback.gossipListen = HostPort(host: "127.0.0.1", port: 7948)
        loopback.overlayListen = HostPort(host: "127.0.0.1", port: 7947)
        #expect(try loopback.resolvingAdvertiseHost(logger: logger) { .failure(.none) }.advertiseHost == nil)
    }
}
