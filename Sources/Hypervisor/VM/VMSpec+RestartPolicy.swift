extension VMSpec {
    /// What a VM's owner does when the VM's QEMU dies while it should run (Protocol.md §9.1).
    /// The raw values are what `restart = …` in the agent's TOML and `vm create --restart` take.
    public enum RestartPolicy: String, Codable, Sendable, CaseIterable {
        /// Leave it down (it shows as crashed until an operator starts it).
        case no
        /// Restart it from its disks, with backoff and a limit, at a higher ownership epoch.
        case onFailure = "on-failure"

        /// Decodes the raw value, naming the allowed ones when it is none of them.
        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let value = Self(rawValue: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                    "restart policy \"\(text)\" is not one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
            self = value
        }
    }
}
