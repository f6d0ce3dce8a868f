// encstat -a: one line per SA with its traffic, drops, replay position and lifetime
// left (OpenBSD's netstat has no such table; ipsecctl -sa -v has the same facts in
// prose). Sorted by SPI, then direction, as ipsecctl sorts the SAD.
//
//   SAD:
//   Proto Dir SPI        Source    Destination State  Packets Bytes Drops Seq Window Lifetime left
//   esp   out 0x00001000 192.0.2.1 192.0.2.2   mature       3   252     0   4     64 hard 3540s
//
// Columns are as wide as their longest value. Seq is, inbound, the highest sequence
// number accepted (the right edge of the replay window) and, outbound, the next one
// to send. Lifetime left lists the limits that are set, soft then hard, each as
// seconds "s", bytes "B" and packets "p" joined by "/"; "-" when none is set.
// With -n the protocol prints as its number (50, 51).

public enum NetstatSAs {
    public static let heading = "SAD:\n"

    public static func table(_ sas: [SAStatus], numeric: Bool) -> String {
        let header = ["Proto", "Dir", "SPI", "Source", "Destination", "State", "Packets", "Bytes", "Drops",
                      "Seq", "Window", "Lifetime left"]
        let rightAligned: Set<Int> = [6, 7, 8, 9, 10]
        var rows = [header]
        for sa in sorted(sas) {
            rows.append([numeric ? protoNumber(sa.proto) : sa.proto, sa.direction, spi(sa.spi), sa.source,
                         sa.destination, sa.state, String(sa.packets), String(sa.bytes), String(sa.drops),
                         String(sa.sequence), String(sa.replayWindow), lifetimeLeft(sa)])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = heading
        for r in rows {
            var cells: [String] = []
            for (i, c) in r.enumerated() {
                let fill = String(repeating: " ", count: widths[i] - c.count)
                if i == r.count - 1 { cells.append(c) } else { cells.append(rightAligned.contains(i) ? fill + c : c + fill) }
            }
            out += cells.joined(separator: " ") + "\n"
        }
        return out
    }

    public static func sorted(_ sas: [SAStatus]) -> [SAStatus] {
        sas.sorted { ($0.spi, $0.direction, $0.proto) < ($1.spi, $1.direction, $1.proto) }
    }

    public static func spi(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - h.count)) + h
    }

    static func protoNumber(_ p: String) -> String {
        switch p {
        case "esp": return "50"
        case "ah": return "51"
        default: return p
        }
    }

    /// "soft 3000s hard 3540s/1048576B", or "-".
    public static func lifetimeLeft(_ sa: SAStatus) -> String {
        func kind(_ name: String, _ s: UInt64?, _ b: UInt64?, _ p: UInt64?) -> String? {
            let parts = [s.map { "\($0)s" }, b.map { "\($0)B" }, p.map { "\($0)p" }].compactMap { $0 }
            return parts.isEmpty ? nil : name + " " + parts.joined(separator: "/")
        }
        let kinds = [kind("soft", sa.softSecondsLeft, sa.softBytesLeft, sa.softPacketsLeft),
                     kind("hard", sa.hardSecondsLeft, sa.hardBytesLeft, sa.hardPacketsLeft)].compactMap { $0 }
        return kinds.isEmpty ? "-" : kinds.joined(separator: " ")
    }
}
