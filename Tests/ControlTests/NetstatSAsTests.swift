// Golden text for encstat -a: per-SA traffic, drops, replay position, lifetime left.

import Control
import Testing

@Suite struct NetstatSAsTests {
    static let table = """
        SAD:
        Proto Dir SPI        Source         Destination    State        Packets Bytes Drops Seq Window Lifetime left
        ah    out 0x00000300 2001:db8:ff::1 2001:db8:ff::2 soft-expired       0     0     0   1      0 -
        esp   out 0x00001000 192.0.2.1      192.0.2.2      mature             3   360     0   4     64 soft 3000s hard 3540s/1048216B
        esp   in  0x00001001 192.0.2.2      192.0.2.1      mature             3   360     3   3     64 hard 997p

        """

    @Test func sasPrintSortedBySPIWithAlignedColumns() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-a"])) { _ in EncstatFixtures.sas }.report()
        #expect(out == Self.table)
    }

    @Test func numericPrintsProtocolNumbers() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-an"])) { _ in EncstatFixtures.sas }.report()
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines[2].hasPrefix("51    out 0x00000300 "))
        #expect(lines[3].hasPrefix("50    out 0x00001000 "))
    }

    @Test func asksForVerboseSAs() throws {
        var seen: [Request] = []
        _ = try NetstatRun(try NetstatOptions.parse(["-a"])) { r in seen.append(r); return EncstatFixtures.sas }.report()
        #expect(seen == [Request(.show, what: "sa", verbose: true)])
        #expect(seen[0].showKeys == nil)
    }

    @Test func countersFlowsAndSAsPrintInOrderSeparatedByABlankLine() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-s", "-p", "ipsec", "-r", "-a"])) { r in
            switch r.command {
            case .counters: return EncstatFixtures.busyCounters
            case .show: return r.what == "flow" ? EncstatFixtures.flows : EncstatFixtures.sas
            default: return Response.failure("unexpected")
            }
        }.report()
        #expect(out.hasPrefix(EncstatCountersTests.busyIPsec + "\nEncap:\n"))
        #expect(out.hasSuffix("\n\n" + Self.table))
    }
}
