@testable import Agent
import Testing
import VirtualSwitch

/// The text form of NIC firewall rules (`vm create --ingress/--egress`, VMSpec.NIC).
@Suite struct FirewallRuleTextTests {
    @Test func rulesParse() throws {
        #expect(try FirewallRuleText.parse("tcp:22@10.0.0.0/8", nic: "net0") == .tcp(port: 22, from: IPPrefix("10.0.0.0/8")))
        #expect(try FirewallRuleText.parse("udp:9000-9010", nic: "net0") == FirewallRule(proto: IPProtocol.udp, ports: 9000...9010))
        #expect(try FirewallRuleText.parse("ICMP", nic: "net0") == FirewallRule(proto: IPProtocol.icmp))
        #expect(try FirewallRuleText.parse("any@fd00::/8", nic: "net0") == FirewallRule(remote: IPPrefix("fd00::/8")))
        #expect(try FirewallRuleText.rules(nil, nic: "net0") == .allowAll)
        #expect(try FirewallRuleText.rules([], nic: "net0") == .rules([]))
    }

    @Test func mistakesNameTheRuleAndTheForm() {
        for (text, why) in [("ftp:21", "unknown protocol"), ("icmp:8", "tcp and udp only"), ("tcp:99999", "bad port"),
                            ("tcp:30-20", "bad port"), ("udp:53@10.0.0.0/33", "bad address prefix")] {
            #expect {
                _ = try FirewallRuleText.parse(text, nic: "net0")
            } throws: { error in
                let message = "\(error)"
                return message.contains("nic net0") && message.contains("\"\(text)\"") && message.contains(why) && message.contains("PROTO[:PORT[-PORT]][@CIDR]")
            }
        }
    }
}
