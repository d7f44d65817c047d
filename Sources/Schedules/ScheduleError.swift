/// A schedule refused at creation (Protocol.md §12.2), with the cause and the fix.
public enum ScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    case inThePast(atUnix: Int64, nowUnix: Int64)
    case intervalTooShort(seconds: Int64, minimum: Int64)
    case conflict(object: String, with: String, atUnix: Int64)
    case badAction(String)

    public var description: String {
        switch self {
        case let .inThePast(at, now):
            "the time \(ScheduleTime.format(at)) is \(now - at) s in the past (times are UTC): give a later --at"
        case let .intervalTooShort(seconds, minimum):
            "an interval of \(seconds) s is below the minimum of \(minimum) s: give --every \(minimum)s or more"
        case let .conflict(object, other, at):
            "schedule \(other) already acts on \(object) at \(ScheduleTime.format(at)): two operations on one object at one time are refused; "
                + "choose another time or remove \(other) (`hostmesh schedule remove \(other)`)"
        case let .badAction(why):
            why
        }
    }
}
