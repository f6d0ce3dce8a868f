// KernelStats: one counter from /proc/net/netstat (or /proc/net/snmp), the kernel's SNMP
// MIB in its own text form: for each group a line of names and a line of values,
//   TcpExt: SyncookiesSent ... IPReversePathFilter ...
//   TcpExt: 0 ... 17 ...
// Read in the caller's network namespace.

public enum KernelStats {
    /// The value of `name` in `group` of `text` (the file's contents), nil when absent.
    public static func value(_ group: String, _ name: String, in text: String) -> UInt64? {
        let lines = text.split(separator: "\n")
        var i = 0
        while i + 1 < lines.count {
            let names = lines[i].split(separator: " ")
            let values = lines[i + 1].split(separator: " ")
            if names.first == "\(group):" && values.first == "\(group):" && names.count == values.count,
               let at = names.firstIndex(where: { $0 == name }) {
                return UInt64(values[at])
            }
            i += 1
        }
        return nil
    }

    /// `name` of `group` in /proc/net/netstat; nil when the kernel has no such counter.
    public static func netstat(_ group: String, _ name: String) throws -> UInt64? {
        value(group, name, in: try ProcFile.read("/proc/net/netstat"))
    }

    /// The transmit drops of `interface` in /proc/net/dev's text (`face |bytes packets
    /// errs drop ... | bytes packets errs drop ...`: the 12th number), nil when absent.
    public static func transmitDrops(_ interface: String, in text: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"),
                  line[..<colon].split(separator: " ").last.map(String.init) == interface else { continue }
            let fields = line[line.index(after: colon)...].split(separator: " ")
            return fields.count >= 12 ? UInt64(fields[11]) : nil
        }
        return nil
    }

    /// `interface`'s transmit drops (frames its queue could not hold), from /proc/net/dev.
    public static func transmitDrops(_ interface: String) throws -> UInt64? {
        transmitDrops(interface, in: try ProcFile.read("/proc/net/dev"))
    }
}
