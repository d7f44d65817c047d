import MeshTime
import NIOCore
import ShellSupport
import Testing

@Suite struct ShellTimelineTests {
    @Test func mapsDeadlinesToInstantsAndBack() {
        let timeline = ShellTimeline(origin: .uptimeNanoseconds(5_000_000_000))
        #expect(timeline.instant(at: .uptimeNanoseconds(6_500_000_000)) == MeshInstant(sinceOrigin: .milliseconds(1500)))
        #expect(timeline.instant(at: .uptimeNanoseconds(4_000_000_000)) == MeshInstant(sinceOrigin: .seconds(-1)))
        #expect(timeline.deadline(at: MeshInstant(sinceOrigin: .milliseconds(1500))) == .uptimeNanoseconds(6_500_000_000))
        #expect(timeline.deadline(at: MeshInstant(sinceOrigin: .seconds(-3))) == .uptimeNanoseconds(5_000_000_000),
                "an instant before the origin is due at once")
    }

    @Test func uptimeTimelineIsTheLoopClock() {
        let before = NIODeadline.now().uptimeNanoseconds
        let now = ShellTimeline().now()
        let after = NIODeadline.now().uptimeNanoseconds
        #expect(UInt64(now.nanosecondsSinceOrigin) >= before && UInt64(now.nanosecondsSinceOrigin) <= after)
        let started = ShellTimeline.startingNow()
        #expect(started.now() >= .origin && started.now() < MeshInstant(sinceOrigin: .seconds(5)))
    }

    @Test func nioConvertsDurationsToTimeAmountsClamped() {
        // The one Duration → TimeAmount conversion the shells use is NIO's own initializer.
        #expect(TimeAmount(.milliseconds(1500)) == .nanoseconds(1_500_000_000))
        #expect(TimeAmount(.seconds(Int64.max)) == .nanoseconds(.max))
        #expect(TimeAmount(.milliseconds(-2)) == .nanoseconds(-2_000_000))
    }
}
