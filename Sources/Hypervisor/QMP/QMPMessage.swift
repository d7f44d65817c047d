import Foundation

/// One message received from QEMU on a QMP socket, classified but otherwise untouched.
enum QMPInbound: Sendable, Equatable {
    /// The greeting QEMU sends once per connection: `{"QMP": {"version": ..., "capabilities": [...]}}`.
    case greeting(QMPGreeting)
    /// A successful answer to the command with `id`.
    case success(id: JSONValue?, result: JSONValue)
    /// A failed answer to the command with `id` (QEMU answers without an id when it could not
    /// even parse the command).
    case failure(id: JSONValue?, errorClass: String, description: String)
    /// An asynchronous event.
    case event(QMPEvent)

    /// Classifies one line. Throws `QMPError.malformedMessage` for non-JSON and
    /// `QMPError.unexpectedMessage` for JSON that is none of the four QMP shapes.
    static func parse(line: Data) throws -> QMPInbound {
        let value: JSONValue
        do {
            value = try JSONValue.parse(line)
        } catch {
            throw QMPError.malformedMessage(excerpt: excerpt(line))
        }
        guard case let .object(members) = value else {
            throw QMPError.unexpectedMessage(excerpt: excerpt(line))
        }
        if let result = members["return"] {
            return .success(id: members["id"], result: result)
        }
        if let error = members["error"] {
            guard let errorClass = error["class"]?.stringValue else {
                throw QMPError.unexpectedMessage(excerpt: excerpt(line))
            }
            return .failure(id: members["id"], errorClass: errorClass, description: error["desc"]?.stringValue ?? "")
        }
        if let name = members["event"]?.stringValue {
            let stamp = members["timestamp"]
            let seconds = stamp?["seconds"]?.doubleValue ?? 0
            let micros = stamp?["microseconds"]?.doubleValue ?? 0
            return .event(QMPEvent(name: name, data: members["data"] ?? .object([:]), timestamp: seconds + micros / 1e6))
        }
        if let qmp = members["QMP"] {
            let version = qmp["version"]?["qemu"]
            return .greeting(QMPGreeting(
                major: Int(version?["major"]?.intValue ?? 0),
                minor: Int(version?["minor"]?.intValue ?? 0),
                micro: Int(version?["micro"]?.intValue ?? 0),
                package: qmp["version"]?["package"]?.stringValue ?? "",
                capabilities: qmp["capabilities"].flatMap { value -> [String]? in
                    guard case let .array(items) = value else { return nil }
                    return items.compactMap(\.stringValue)
                } ?? []
            ))
        }
        throw QMPError.unexpectedMessage(excerpt: excerpt(line))
    }

    /// The start of a line, printable, for error messages.
    static func excerpt(_ line: Data, limit: Int = 200) -> String {
        let text = String(decoding: line.prefix(limit), as: UTF8.self)
        return line.count > limit ? text + "…" : text
    }
}

/// What QEMU says about itself when a QMP client connects.
public struct QMPGreeting: Sendable, Equatable {
    /// QEMU major version (7 for 7.2.x).
    public var major: Int
    /// QEMU minor version.
    public var minor: Int
    /// QEMU micro version.
    public var micro: Int
    /// Distribution package string, e.g. `Debian 1:7.2+dfsg-7`.
    public var package: String
    /// Optional protocol capabilities offered (e.g. `oob`); this client enables none of them.
    public var capabilities: [String]

    /// `major.minor.micro`.
    public var version: String { "\(major).\(minor).\(micro)" }
}

/// An asynchronous QMP event (STOP, RESUME, MIGRATION, SHUTDOWN, ...).
public struct QMPEvent: Sendable, Equatable {
    /// The event name exactly as QEMU sends it, e.g. `MIGRATION`.
    public var name: String
    /// The event's `data` member (an empty object when absent).
    public var data: JSONValue
    /// QEMU's timestamp, seconds since the Unix epoch.
    public var timestamp: Double

    /// Creates an event (tests and fakes).
    public init(name: String, data: JSONValue = .object([:]), timestamp: Double = 0) {
        self.name = name
        self.data = data
        self.timestamp = timestamp
    }

    /// The event as a typed value for the events this project reacts to.
    public var kind: Kind {
        switch name {
        case "STOP": return .stop
        case "RESUME": return .resume
        case "SHUTDOWN":
            return .shutdown(guestInitiated: data["guest"] == .bool(true), reason: data["reason"]?.stringValue ?? "")
        case "POWERDOWN": return .powerdown
        case "RESET": return .reset
        case "MIGRATION": return .migration(status: data["status"]?.stringValue ?? "")
        case "MIGRATION_PASS": return .migrationPass(Int(data["pass"]?.intValue ?? 0))
        default: return .other
        }
    }

    /// The events this project reacts to; everything else is `.other` (look at `name`).
    public enum Kind: Sendable, Equatable {
        /// The guest's vCPUs stopped (stop command, migration switchover, error).
        case stop
        /// The guest's vCPUs run again.
        case resume
        /// QEMU is shutting down; `guestInitiated` is true when the guest powered itself off.
        case shutdown(guestInitiated: Bool, reason: String)
        /// An ACPI power button press was delivered (system_powerdown).
        case powerdown
        /// The guest reset.
        case reset
        /// The migration state changed (needs the `events` migration capability).
        case migration(status: String)
        /// A pre-copy pass over guest RAM began (needs the `events` migration capability).
        case migrationPass(Int)
        /// Any other event.
        case other
    }
}
