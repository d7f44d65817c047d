/// Times and intervals as operators type them (Protocol.md §12.2). All times are UTC. Pure:
/// `now` is given, so parsing a relative time is deterministic.
public enum ScheduleTime {
    /// `2026-12-05T10:30:00Z` (also without seconds, with a space for the `T`, without the `Z`:
    /// always UTC), `+90s` / `+5m` / `+2h` / `+1d` from now, or `@<unix seconds>`.
    public static func parse(_ text: String, nowUnix: Int64) -> Int64? {
        let t = text.trimmingWhitespace()
        if t.hasPrefix("+") { return interval(String(t.dropFirst())).map { nowUnix + $0 } }
        if t.hasPrefix("@") { return Int64(t.dropFirst()) }
        var s = t.hasSuffix("Z") ? String(t.dropLast()) : t
        s = s.replacingSpace()
        let parts = s.split(separator: "T", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-").map { Int($0) }
        let clock = parts[1].split(separator: ":").map { Int($0) }
        guard date.count == 3, (2...3).contains(clock.count), !date.contains(nil), !clock.contains(nil) else { return nil }
        let (y, mo, d) = (date[0]!, date[1]!, date[2]!)
        let (h, mi, sec) = (clock[0]!, clock[1]!, clock.count == 3 ? clock[2]! : 0)
        guard (1970...9999).contains(y), (1...12).contains(mo), (1...daysIn(month: mo, year: y)).contains(d),
              (0...23).contains(h), (0...59).contains(mi), (0...59).contains(sec) else { return nil }
        return Int64(daysFromCivil(y, mo, d)) * 86_400 + Int64(h * 3_600 + mi * 60 + sec)
    }

    /// `90s`, `5m`, `2h`, `1d`, or plain seconds.
    public static func interval(_ text: String) -> Int64? {
        let t = text.trimmingWhitespace()
        guard let unit = t.last else { return nil }
        let scale: Int64
        var digits = Substring(t)
        switch unit {
        case "s": scale = 1; digits = digits.dropLast()
        case "m": scale = 60; digits = digits.dropLast()
        case "h": scale = 3_600; digits = digits.dropLast()
        case "d": scale = 86_400; digits = digits.dropLast()
        default: scale = 1
        }
        guard let n = Int64(digits), n >= 0, n <= Int64.max / scale / 2 else { return nil }
        return n * scale
    }

    /// `2026-12-05T10:30:00Z`.
    public static func format(_ unix: Int64) -> String {
        let days = unix >= 0 ? unix / 86_400 : (unix - 86_399) / 86_400
        let seconds = Int(unix - days * 86_400)
        let (y, m, d) = civilFromDays(Int(days))
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(seconds / 3_600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))Z"
    }

    // Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    fileprivate func replacingSpace() -> String { String(map { $0 == " " ? "T" : $0 }) }
}
