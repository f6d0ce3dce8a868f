// Golden text for encstat -r, after OpenBSD's usr.bin/netstat/show.c v1.30
// (pr_rthdr's "%-18s %-5s %-18s %-5s %-5s %-22s" header, p_encap's "%-*s %-5u ",
// p_protocol's "%-6u" and peer/proto/type/direction, netname4's shortened networks).

import Control
import EncCore
import Testing

@Suite struct NetstatRoutesTests {
    @Test func headerMatchesOpenBSDColumnForColumn() {
        #expect(NetstatRoutes.header ==
                "Source             Port  Destination        Port  Proto SA(Address/Proto/Type/Direction)\n")
    }

    @Test func flowsPrintAsNetstatRnFEncapWithoutN() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-r"])) { _ in EncstatFixtures.flows }.report()
        #expect(out == """
            Encap:
            Source             Port  Destination        Port  Proto SA(Address/Proto/Type/Direction)
            10.1.0/24          0     10.2.0/24          0     0     192.0.2.2/esp/require/out
            10.2.0/24          0     10.1.0/24          0     0     192.0.2.2/esp/require/in
            192.0.2.1/32       22    default            0     6     198.51.100.7/ah/use/out
            172.16/12          0     10/8               0     0     none/esp/bypass/out
            2001:db8:1::/64    0     2001:db8:2:0:1234: 53    17    none/esp/deny/out
            default            0     2001:db8:2::/48    0     0     2001:db8:ff::2/esp/acquire/out

            """)
    }

    @Test func numericWidensIPv6ColumnsAndCutsNothing() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-rn"])) { _ in EncstatFixtures.flows }.report()
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines[2] == "10.1.0/24          0     10.2.0/24          0     0     192.0.2.2/esp/require/out")
        #expect(lines[6] == "2001:db8:1::/64                    0     2001:db8:2:0:1234:5678:9abc:def0/128 53    17    none/esp/deny/out")
        #expect(lines[7] == "default                            0     2001:db8:2::/48                    0     0     2001:db8:ff::2/esp/acquire/out")
    }

    @Test func netnameShortensIPv4ToTheOctetsTheMaskCovers() {
        #expect(NetstatRoutes.netName(IPPrefix("127.0.0.0/8")!) == "127/8")
        #expect(NetstatRoutes.netName(IPPrefix("10.1.0.0/16")!) == "10.1/16")
        #expect(NetstatRoutes.netName(IPPrefix("10.1.2.0/23")!) == "10.1.2/23")
        #expect(NetstatRoutes.netName(IPPrefix("10.1.2.128/25")!) == "10.1.2.128/25")
        #expect(NetstatRoutes.netName(IPPrefix("192.0.2.1")!) == "192.0.2.1/32")
        #expect(NetstatRoutes.netName(IPPrefix("0.0.0.0/0")!) == "default")
        #expect(NetstatRoutes.netName(IPPrefix("::/0")!) == "default")
        #expect(NetstatRoutes.netName(IPPrefix("2001:db8::1")!) == "2001:db8::1/128")
    }

    @Test func noFlowsPrintsOnlyTheHeadings() throws {
        let out = try NetstatRun(try NetstatOptions.parse(["-r"])) { _ in Response() }.report()
        #expect(out == NetstatRoutes.heading + NetstatRoutes.header)
    }
}
