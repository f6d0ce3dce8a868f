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
}
