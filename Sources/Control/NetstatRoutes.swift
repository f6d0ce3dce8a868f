// encstat -r: the flows as OpenBSD's `netstat -rn -f encap` prints them
// (usr.bin/netstat/show.c v1.30: pr_rthdr, p_pfkentry, p_encap, p_protocol).
//
//   Encap:
//   Source             Port  Destination        Port  Proto SA(Address/Proto/Type/Direction)
//   10.1.0/24          0     10.2.0/24          0     0     192.0.2.2/esp/require/out
//
// Networks print as netname4/netname6 do: "default" for 0.0.0.0/0 and ::/0, IPv4
// shortened to the octets the mask covers ("10.1.0/24", "127/8", "192.0.2.1/32"),
// IPv6 as "address/len". Columns are 18 wide (34 for IPv6 with -n); without -n a
// longer name is cut at the column, as netstat cuts it. Ports and the protocol are
// numbers, 0 for any. Bypass and deny flows carry no SA address: "none".

import EncCore

public enum NetstatRoutes {
    public static let heading = "Encap:\n"
    public static let header = "Source             Port  Destination        Port  Proto SA(Address/Proto/Type/Direction)\n"

    /// The whole table: heading, header line, one row per flow in the daemon's order.
    public static func table(_ flows: [FlowStatus], numeric: Bool) -> String {
        heading + header + flows.map { row($0, numeric: numeric) + "\n" }.joined()
    }

    /// One row, without a newline.
    public static func row(_ f: FlowStatus, numeric: Bool) -> String {
        var s = column(f.source, port: f.sourcePort, numeric: numeric)
        s += column(f.destination, port: f.destinationPort, numeric: numeric)
        s += pad(String(f.upperProtocol ?? 0), 6)
        let hasSA = f.type != "bypass" && f.type != "deny"
        s += (hasSA ? f.peer.map(hostName) : nil) ?? "none"
        s += "/" + f.proto + "/" + f.type + "/" + f.direction
        return s
    }

    /// A network and its port: "%-*s %-5u " (or "%-*.*s" without -n).
    static func column(_ text: String, port: UInt16?, numeric: Bool) -> String {
        let prefix = parsePrefix(text)
        let width = numeric && prefix?.family == .inet6 ? 34 : 18
        var name = prefix.map(netName) ?? text
        if !numeric && name.count > width { name = String(name.prefix(width)) }
        return pad(name, width) + " " + pad(String(port ?? 0), 5) + " "
    }

    /// "any" and address[/len] as the daemon reports them.
    static func parsePrefix(_ text: String) -> IPPrefix? {
        if text == "any" { return IPPrefix.any(.inet) }
        return IPPrefix(text)
    }

    /// netname4 / netname6 of show.c.
    public static func netName(_ p: IPPrefix) -> String {
        if p.length == 0 && p.address.isUnspecified { return "default" }
        guard p.family == .inet else { return "\(p.address)/\(p.length)" }
        let a = p.address.v4
        let octets = [a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff].map(String.init)
        let shown = p.length < 9 ? 1 : p.length < 17 ? 2 : p.length < 25 ? 3 : 4
        return octets.prefix(shown).joined(separator: ".") + "/\(p.length)"
    }

    /// routename4 with -n: the numeric address, "default" for 0.0.0.0.
    static func hostName(_ text: String) -> String {
        if let a = IPAddress(text), a.family == .inet, a.isUnspecified { return "default" }
        return text
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
