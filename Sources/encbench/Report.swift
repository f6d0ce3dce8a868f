// The table encbench prints: plain text for a terminal and CI logs, or Markdown for
// Docs/benchmarks.md.

#if canImport(Glibc)
import Glibc
#endif

struct Report {
    let options: Options

    func header() {
        let what = "\(options.packets) packets of \(options.size) bytes per run, median of \(options.runs) run\(options.runs == 1 ? "" : "s"); "
            + "ESP/AH tunnel mode, IPv4 in IPv4; decrypt cycles a ring of \(options.ring) packets"
        if options.markdown {
            print("<!-- \(what) -->")
            print("| protocol | operation | algorithm | ns/packet | Mpps | Gbit/s | allocations in steady state |")
            print("|---|---|---|--:|--:|--:|--:|")
        } else {
            print("encbench: \(what)")
            print(pad("protocol", 9) + pad("operation", 10) + pad("algorithm", 29)
                  + lpad("ns/packet", 10) + lpad("Mpps", 8) + lpad("Gbit/s", 8))
        }
        fflush(stdout)
    }

    func row(_ m: Measurement) {
        let ns = fixed(m.nanosecondsPerPacket, 0), mpps = fixed(m.packetsPerSecond / 1e6, 3)
        let gbps = fixed(m.gigabitsPerSecond, 2)
        if options.markdown {
            print("| \(m.protocolName) | \(m.operation) | \(m.label) | \(ns) | \(mpps) | \(gbps) | \(m.allocations) |")
        } else {
            var line = pad(m.protocolName, 9) + pad(m.operation, 10) + pad(m.label, 29)
                + lpad(ns, 10) + lpad(mpps, 8) + lpad(gbps, 8)
                + "   allocations in steady state: \(m.allocations)"
            if m.failures > 0 { line += "   DROPPED: \(m.failures)" }
            print(line)
        }
        fflush(stdout)
    }

    func footer(ok: Bool) {
        let verdict = ok ? "ok: no allocation and no drop in any timed loop"
                         : "FAILED: a timed loop allocated or dropped packets (see the rows above)"
        print(options.markdown ? "\n<!-- \(verdict) -->" : verdict)
    }

    private func fixed(_ v: Double, _ digits: Int) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = withVaList([v]) { vsnprintf(&buf, buf.count, "%.\(digits)f", $0) }
        return String(cString: buf)
    }
    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
    private func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
}
