import ControlAPI
@testable import MigrationService
import Testing

/// What the source remembers of a destination address so that a migration there opens its
/// stream's channels as it starts (Protocol.md §6.3): the host and round trip last measured, for
/// an hour, never an unreadable round trip, and a bounded number of addresses.
@Suite struct MeasuredDestinationTests {
    let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: FakeRegistry())
    let address = HostPort(host: "10.0.0.2", port: 7946)

    @Test func theLastMeasurementOfAnAddressIsUsedForAnHour() async {
        #expect(await coordinator.measuredDestination(address) == nil)
        await coordinator.measured(address, host: "node-b", roundTrip: 150_000, acceptsFiller: true)
        let known = await coordinator.measuredDestination(address)
        #expect(known?.host == "node-b" && known?.roundTripMicroseconds == 150_000 && known?.acceptsFiller == true)
        // A round trip that could not be read (0) does not replace it.
        await coordinator.measured(address, host: "node-b", roundTrip: 0)
        #expect(await coordinator.measuredDestination(address)?.roundTripMicroseconds == 150_000)
        // Another host answering there now replaces it.
        await coordinator.measured(address, host: "node-c", roundTrip: 2_000)
        #expect(await coordinator.measuredDestination(address)?.host == "node-c")
        // Whether it accepts filler is that host's own word: one that did not say so is sent none.
        #expect(await coordinator.measuredDestination(address)?.acceptsFiller == false)
        // Older than an hour: not used.
        await coordinator.remember(address, host: "node-b", roundTrip: 150_000, at: .now - MeasuredDestination.maxAge - .seconds(1))
        #expect(await coordinator.measuredDestination(address) == nil)
    }

    @Test func pastTheBoundTheOldestAddressIsForgotten() async {
        let start = ContinuousClock.now - .seconds(60)
        for index in 0..<MeasuredDestination.maxEntries {
            await coordinator.remember(HostPort(host: "10.1.\(index / 256).\(index % 256)", port: 7946), host: "h\(index)",
                                       roundTrip: 1_000, at: start + .milliseconds(index))
        }
        await coordinator.measured(address, host: "node-b", roundTrip: 150_000)
        #expect(await coordinator.measuredDestination(HostPort(host: "10.1.0.0", port: 7946)) == nil, "the oldest stays")
        #expect(await coordinator.measuredDestination(HostPort(host: "10.1.0.1", port: 7946))?.host == "h1")
        #expect(await coordinator.measuredDestination(address)?.host == "node-b")
        #expect(await coordinator.measuredDestinations.count == MeasuredDestination.maxEntries)
    }
}
