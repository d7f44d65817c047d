public import NIOCore

/// A frame's kind in a word, for timelines and logs: `arp`, `rarp`, `icmp-echo-reply`,
/// `icmp-echo-request`, `icmp`, `tcp-data` (a TCP segment with payload), `tcp-ack` (without),
/// `udp`, `ipv4`, `ipv6`, or the EtherType in hex. Untagged frames only (a tagged one shows its
/// TPID).
public enum FrameKind {
    public static func of(_ frame: ByteBuffer) -> String {
        let base = frame.readerIndex
        guard let etherType = frame.getInteger(at: base + 12, as: UInt16.self) else { return "runt" }
        switch etherType {
        case EtherType.arp: return "arp"
        case EtherType.rarp: return "rarp"
        case EtherType.ipv6: return "ipv6"
        case EtherType.ipv4: break
        default: return String(etherType, radix: 16)
        }
        let ip = base + 14
        guard let versionAndLength = frame.getInteger(at: ip, as: UInt8.self), let total = frame.getInteger(at: ip + 2, as: UInt16.self),
              let proto = frame.getInteger(at: ip + 9, as: UInt8.self) else { return "ipv4" }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        switch proto {
        case 1:
            switch frame.getInteger(at: ip + headerLength, as: UInt8.self) {
            case 0?: return "icmp-echo-reply"
            case 8?: return "icmp-echo-request"
            default: return "icmp"
            }
        case 6:
            guard let offsetByte = frame.getInteger(at: ip + headerLength + 12, as: UInt8.self) else { return "tcp" }
            return Int(total) - headerLength - Int(offsetByte >> 4) * 4 > 0 ? "tcp-data" : "tcp-ack"
        case 17: return "udp"
        default: return "ipv4"
        }
    }
}
