// The lines `encctl -s sa -v` prints under each SA, in the style of OpenBSD's pfkdump
// (ipsecctl -v): one "\t<name>: ..." line per aspect, continuation lines indented by
// two tabs. Every line is optional except sa:, direction: and sequence:.
//
//   esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes
//   	sa: spi 0x00001000 auth hmac-sha2-256 enc aes
//   		state mature replay 64 flags 0x404<tunnel,esn>
//   	direction: out
//   	sequence: next 42                 (in: "highest 41", the replay window's top)
//   	lifetime_cur: bytes 5904 packets 41 seconds 12 firstuse 3   (or "firstuse never")
//   	lifetime_soft: bytes 1000 packets 10 seconds 3588 left
//   	lifetime_hard: seconds 2 left
//   	udpencap: peer 198.51.100.7:31000
//   	owner: encd-iked child 7           (SAs a key daemon added; "child" when bound)
//   	idle: 3 seconds                    (since the SA last carried a packet; once it has)
//   	counter:
//   		41 output packets
//   		5904 output bytes
//   		1 packet dropped on output
//
// flags: pfkdump's print_flags, "%#x<names>" with OpenBSD's SADB bits (tunnel 0x4,
// udpencap 0x200, esn 0x400; "0<>" when none); other names the daemon reports follow
// in the list, except "replay" and "transport", which the state line and the rule show. state: mature, soft-expired, hard-expired, exhausted.
// counter: pfkdump's print_counter wording and plural rule; lines that are zero are
// left out unless -vv (as pfkdump does), and the heading goes when no line remains.
// No key is ever printed here.

public enum IpsecctlDetails {
    /// OpenBSD's SADB_SAFLAGS bits, in print order (lowest bit first).
    static let flagBits: [(name: String, bit: UInt32)] = [("tunnel", 0x004), ("udpencap", 0x200), ("esn", 0x400)]
    /// Daemon flags that the rule or the state line already say ("replay 64", the mode).
    static let shownElsewhere: Set<String> = ["replay", "transport"]

    public static func lines(_ sa: SAStatus, showZeroCounters: Bool) -> String {
        let words = IpsecctlRule.words(sa.text)
        var s = "\tsa: spi 0x\(hex8(sa.spi)) auth \(words.value(after: "auth") ?? "none") enc \(words.value(after: "enc") ?? "none")\n"
        s += "\t\tstate \(sa.state) replay \(sa.replayWindow) flags \(flags(sa, mode: words.mode))\n"
        s += "\tdirection: \(sa.direction)\n"
        s += "\tsequence: \(sa.direction == "in" ? "highest" : "next") \(sa.sequence)\n"
        s += "\tlifetime_cur: bytes \(sa.bytes) packets \(sa.packets) seconds \(sa.age) firstuse "
            + (sa.sinceFirstUse.map(String.init) ?? "never") + "\n"
        s += left("lifetime_soft", sa.softBytesLeft, sa.softPacketsLeft, sa.softSecondsLeft)
        s += left("lifetime_hard", sa.hardBytesLeft, sa.hardPacketsLeft, sa.hardSecondsLeft)
        if let p = sa.natPeer { s += "\tudpencap: peer \(p)\n" }
        if let o = sa.owner { s += "\towner: \(o)" + (sa.child.map { " child \($0)" } ?? "") + "\n" }
        if let i = sa.idle { s += "\tidle: \(i) second\(i == 1 ? "" : "s")\n" }
        s += counters(sa, showZero: showZeroCounters)
        return s
    }

    /// "%#x<a,b>" as pfkdump's print_flags (C's %#x prints 0 without "0x").
    static func flags(_ sa: SAStatus, mode: String?) -> String {
        var names = Set(sa.flags)
        if mode == "tunnel" { names.insert("tunnel") }
        var value: UInt32 = 0
        var listed = [String]()
        for f in flagBits where names.contains(f.name) {
            value |= f.bit
            listed.append(f.name)
        }
        listed += sa.flags.filter { n in !flagBits.contains { $0.name == n } && !shownElsewhere.contains(n) }
        return (value == 0 ? "0" : "0x" + String(value, radix: 16)) + "<" + listed.joined(separator: ",") + ">"
    }

    private static func left(_ name: String, _ bytes: UInt64?, _ packets: UInt64?, _ seconds: UInt64?) -> String {
        var parts = [String]()
        if let v = bytes { parts.append("bytes \(v)") }
        if let v = packets { parts.append("packets \(v)") }
        if let v = seconds { parts.append("seconds \(v)") }
        return parts.isEmpty ? "" : "\t\(name): \(parts.joined(separator: " ")) left\n"
    }

    private static func counters(_ sa: SAStatus, showZero: Bool) -> String {
        let dir = sa.direction == "in" ? "input" : "output"
        var rows: [(UInt64, String, String)] = [
            (sa.packets, "\(dir) packet", ""),
            (sa.bytes, "\(dir) byte", ""),
            (sa.drops, "packet", " dropped on \(dir)"),
        ]
        if sa.direction == "in" {
            rows.append((sa.replayDrops, "possibly replayed packet", " received"))
            rows.append((sa.authFailures, "packet", " that failed verification received"))
        }
        let body = rows.filter { showZero || $0.0 != 0 }
            .map { "\t\t\($0.0) \($0.1)\($0.0 == 1 ? "" : "s")\($0.2)\n" }.joined()
        return body.isEmpty ? "" : "\tcounter:\n" + body
    }

    static func hex8(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 8 - h.count)) + h
    }
}

/// The words of an ipsecctl rule's first line, for the few facts SAStatus carries only
/// in its text (mode, algorithms).
struct IpsecctlRule {
    var list: [Substring]

    static func words(_ text: String) -> IpsecctlRule {
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return IpsecctlRule(list: line.split(separator: " "))
    }

    /// The word after the first `keyword`.
    func value(after keyword: String) -> String? {
        guard let i = list.firstIndex(where: { $0 == keyword }), i + 1 < list.count else { return nil }
        return String(list[i + 1])
    }

    /// "tunnel" or "transport": the second word of "esp tunnel from ...".
    var mode: String? { list.count > 1 ? String(list[1]) : nil }
}
