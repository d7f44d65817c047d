import VirtualSwitch

/// The text form of a firewall rule in a VM's NIC spec: `PROTO[:PORT[-PORT]][@CIDR]`, PROTO one
/// of tcp, udp, icmp, icmpv6, any. Ports only with tcp and udp.
enum FirewallRuleText {
    static let syntax = "PROTO[:PORT[-PORT]][@CIDR] with PROTO tcp, udp, icmp, icmpv6 or any (e.g. tcp:22@10.0.0.0/8, udp:9000-9010, icmp)"

    static func parse(_ text: String, nic: String) throws(AgentError) -> FirewallRule {
        func bad(_ why: String) -> AgentError { .badConfiguration(path: "nic \(nic)", reason: "firewall rule \"\(text)\": \(why); the form is \(syntax)") }
        let (head, remoteText) = split(text, at: "@")
        let (protoText, portText) = split(head, at: ":")
        let proto: UInt8?
        switch protoText.lowercased() {
        case "tcp": proto = IPProtocol.tcp
        case "udp": proto = IPProtocol.udp
        case "icmp": proto = IPProtocol.icmp
        case "icmpv6": proto = IPProtocol.icmpv6
        case "any": proto = nil
        default: throw bad("unknown protocol \"\(protoText)\"")
        }
        var ports: ClosedRange<UInt16>?
        if let portText {
            guard proto == IPProtocol.tcp || proto == IPProtocol.udp else { throw bad("ports apply to tcp and udp only") }
            let (low, high) = split(portText, at: "-")
            guard let first = UInt16(low), let last = UInt16(high ?? low), first <= last else { throw bad("bad port or range \"\(portText)\"") }
            ports = first...last
        }
        var remote: IPPrefix?
        if let remoteText {
            guard let prefix = IPPrefix(remoteText) else { throw bad("bad address prefix \"\(remoteText)\"") }
            remote = prefix
        }
        return FirewallRule(proto: proto, ports: ports, remote: remote)
    }

    /// nil (no rules given) allows everything; a list allows only what matches it.
    static func rules(_ texts: [String]?, nic: String) throws(AgentError) -> FirewallRules {
        guard let texts else { return .allowAll }
        var rules: [FirewallRule] = []
        for text in texts { rules.append(try parse(text, nic: nic)) }
        return .rules(rules)
    }

    private static func split(_ text: String, at separator: Character) -> (String, String?) {
        guard let index = text.firstIndex(of: separator) else { return (text, nil) }
        return (String(text[..<index]), String(text[text.index(after: index)...]))
    }
}
