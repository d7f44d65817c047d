import MeshTime
import Testing

@Suite struct MeshInstantTests {
    @Test func arithmeticAndOrder() {
        let t = MeshInstant(sinceOrigin: .milliseconds(1500))
        #expect(t.nanosecondsSinceOrigin == 1_500_000_000)
        #expect(t + .seconds(1) == MeshInstant(nanosecondsSinceOrigin: 2_500_000_000))
        #expect(t - .seconds(2) == MeshInstant(nanosecondsSinceOrigin: -500_000_000))
        #expect(t - MeshInstant.origin == .milliseconds(1500))
        #expect(MeshInstant.origin - t == .milliseconds(-1500), "a later right-hand side gives a negative span")
        #expect(MeshInstant.origin < t)
        #expect(t.sinceOrigin == .milliseconds(1500))
        #expect(t.seconds == 1.5)
    }

    @Test func arithmeticSaturatesInsteadOfTrapping() {
        let top = MeshInstant(nanosecondsSinceOrigin: .max - 1)
        #expect((top + .seconds(1)).nanosecondsSinceOrigin == .max)
        #expect((top + .seconds(Int64.max)).nanosecondsSinceOrigin == .max)
        let bottom = MeshInstant(nanosecondsSinceOrigin: .min + 1)
        #expect((bottom - .seconds(1)).nanosecondsSinceOrigin == .min)
        #expect((bottom + .seconds(Int64.min)).nanosecondsSinceOrigin == .min)
        #expect(top - bottom == .nanoseconds(Int64.max))
        #expect(bottom - top == .nanoseconds(Int64.min))
    }

    @Test(arguments: [
        (Int64(0), "0.000s"), (12_345_678_901, "12.345s"), (999_999, "0.000s"), (1_000_000, "0.001s"), (60_007_000_000, "60.007s"),
    ])
    func description(nanoseconds: Int64, text: String) {
        #expect(MeshInstant(nanosecondsSinceOrigin: nanoseconds).description == text)
    }
}
