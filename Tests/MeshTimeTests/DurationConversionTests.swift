import MeshTime
import Testing

@Suite struct DurationConversionTests {
    @Test func wholeNanosecondsTruncatesTowardZero() {
        #expect(Duration.seconds(2).wholeNanoseconds == 2_000_000_000)
        #expect(Duration.milliseconds(1500).wholeNanoseconds == 1_500_000_000)
        #expect((Duration.nanoseconds(7) + .init(secondsComponent: 0, attosecondsComponent: 999_999_999)).wholeNanoseconds == 7)
        #expect(Duration.init(secondsComponent: 0, attosecondsComponent: 1_999_999_999).wholeNanoseconds == 1)
        #expect(Duration.zero.wholeNanoseconds == 0)
    }

    @Test func negativeSpansKeepTheirSign() {
        #expect(Duration.milliseconds(-1500).wholeNanoseconds == -1_500_000_000)
        #expect(Duration.milliseconds(-1500).wholeMilliseconds == -1500)
        #expect((Duration.zero - .init(secondsComponent: 0, attosecondsComponent: 1_999_999_999)).wholeNanoseconds == -1)
        #expect(Duration.microseconds(-2500).wholeMilliseconds == -2)
        #expect(Duration.milliseconds(-250).inSeconds == -0.25)
    }

    @Test func largeSpansClampInsteadOfTrapping() {
        #expect(Duration.seconds(Int64.max).wholeNanoseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeNanoseconds == .min)
        #expect(Duration.seconds(9_223_372_036).wholeNanoseconds == 9_223_372_036_000_000_000)
        // Seconds fit once scaled, the nanoseconds of the fraction push past the end.
        let justOver = Duration.seconds(9_223_372_036) + .nanoseconds(854_775_808)
        #expect(justOver.wholeNanoseconds == .max)
        #expect((Duration.zero - justOver - .nanoseconds(1)).wholeNanoseconds == .min)
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMilliseconds == .min)
        #expect(Duration.nanoseconds(Int64.max).wholeNanoseconds == .max)
    }

    @Test func floatingPointForReports() {
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.microseconds(2500).inMilliseconds == 2.5)
        #expect(Duration.seconds(3).inMilliseconds == 3000)
        #expect(Duration.milliseconds(1999).wholeMilliseconds == 1999)
        #expect(Duration.microseconds(1999).wholeMilliseconds == 1)
    }
}
