import Glibc
import Testing
import EncCore
@testable import Kernel

/// Netlink message bytes, checked against values worked out by hand from the kernel
/// headers (linux/rtnetlink.h, linux/fib_rules.h, linux/netfilter/nfnetlink_queue.h).
@Suite struct MessageTests {
    @Test func ipRuleAddMessageMatchesGoldenBytes() {
        let rule = MarkRule(family: .inet, value: 0x0002_0000, mask: 0x0002_0000, table: 100, priority: 100)
        let bytes = RouteMessages.rule(.add, rule, seq: 1)
        let golden: [UInt8] = [
            // nlmsghdr: len 60, type RTM_NEWRULE (32), flags REQUEST|ACK|EXCL|CREATE (0x605), seq 1, pid 0
            0x3c, 0, 0, 0, 0x20, 0, 0x05, 0x06, 1, 0, 0, 0, 0, 0, 0, 0,
            // fib_rule_hdr: family AF_INET, dst_len, src_len, tos, table UNSPEC, res1, res2, action FR_ACT_TO_TBL, flags 0
            2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
            // FRA_PRIORITY (6) = 100
            8, 0, 6, 0, 100, 0, 0, 0,
            // FRA_FWMARK (10) = 0x20000
            8, 0, 10, 0, 0, 0, 2, 0,
            // FRA_FWMASK (16) = 0x20000
            8, 0, 16, 0, 0, 0, 2, 0,
            // FRA_TABLE (15) = 100
            8, 0, 15, 0, 100, 0, 0, 0,
        ]
        #expect(bytes == golden)
        #expect(rule.command(.add) == "ip -4 rule add pref 100 fwmark 0x20000/0x20000 lookup 100")
    }

    @Test func ipRuleDeleteIsNotExclusive() {
        let rule = MarkRule(family: .inet6, value: 2, mask: 2, table: 7, priority: 9)
        let bytes = RouteMessages.rule(.delete, rule, seq: 5)
        #expect(bytes[4] == 33)  // RTM_DELRULE
        #expect(bytes[6] == 0x05 && bytes[7] == 0)  // REQUEST|ACK only
        #expect(bytes[16] == UInt8(AF_INET6))
    }

    @Test func defaultRouteMessageCarriesTableAndDevice() {
        let bytes = RouteMessages.defaultRoute(.add, family: .inet, table: 100, ifindex: 7, seq: 3)
        let golden: [UInt8] = [
            // nlmsghdr: len 44, RTM_NEWROUTE (24), REQUEST|ACK|REPLACE|CREATE (0x505), seq 3
            44, 0, 0, 0, 24, 0, 0x05, 0x05, 3, 0, 0, 0, 0, 0, 0, 0,
            // rtmsg: AF_INET, dst_len 0, src_len 0, tos 0, table UNSPEC, proto STATIC (4), scope LINK (253), type UNICAST (1), flags 0
            2, 0, 0, 0, 0, 4, 253, 1, 0, 0, 0, 0,
            // RTA_TABLE (15) = 100
            8, 0, 15, 0, 100, 0, 0, 0,
            // RTA_OIF (4) = 7
            8, 0, 4, 0, 7, 0, 0, 0,
        ]
        #expect(bytes == golden)
    }

    @Test func linkUpMessageAddressesTheDeviceByName() {
        let bytes = RouteMessages.setLink(name: "enc0", up: true, mtu: 1400, seq: 2)
        // nlmsghdr 16 + ifinfomsg 16 + IFLA_IFNAME "enc0\0" (4+5, padded 12) + IFLA_MTU 8
        #expect(bytes.count == 52)
        #expect(bytes[4] == 16)  // RTM_NEWLINK
        #expect(Array(bytes[24..<32]) == [1, 0, 0, 0, 1, 0, 0, 0])  // ifi_flags IFF_UP, ifi_change IFF_UP
        #expect(Array(bytes[32..<41]) == [9, 0, 3, 0, 0x65, 0x6e, 0x63, 0x30, 0])  // IFLA_IFNAME (3) "enc0"
        #expect(Array(bytes[44..<52]) == [8, 0, 4, 0, 0x78, 0x05, 0, 0])  // IFLA_MTU (4) = 1400
    }

    @Test func addressMessageCarriesLocalAndAddress() {
        let bytes = RouteMessages.address(.add, IPPrefix("192.0.2.1")!, host: IPAddress("192.0.2.1")!, ifindex: 5, seq: 4)
        let golden: [UInt8] = [
            // nlmsghdr: len 40, RTM_NEWADDR (20), REQUEST|ACK|REPLACE|CREATE (0x505), seq 4
            40, 0, 0, 0, 20, 0, 0x05, 0x05, 4, 0, 0, 0, 0, 0, 0, 0,
            // ifaddrmsg: AF_INET, prefixlen 32, flags 0, scope UNIVERSE, index 5
            2, 32, 0, 0, 5, 0, 0, 0,
            // IFA_LOCAL (2), IFA_ADDRESS (1) = 192.0.2.1
            8, 0, 2, 0, 192, 0, 2, 1,
            8, 0, 1, 0, 192, 0, 2, 1,
        ]
        #expect(bytes == golden)
    }

    @Test func routeQueryCarriesDestinationSourceAndMark() {
        let bytes = RouteMessages.getRoute(to: IPAddress("192.0.2.2")!, from: IPAddress("192.0.2.1")!, mark: 0x10000, seq: 6)
        let golden: [UInt8] = [
            // nlmsghdr: len 52, RTM_GETROUTE (26), REQUEST|ACK (0x5), seq 6
            52, 0, 0, 0, 26, 0, 0x05, 0, 6, 0, 0, 0, 0, 0, 0, 0,
            // rtmsg: AF_INET, dst_len 32, src_len 32, then zeros
            2, 32, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // RTA_DST (1), RTA_SRC (2), RTA_MARK (16)
            8, 0, 1, 0, 192, 0, 2, 2,
            8, 0, 2, 0, 192, 0, 2, 1,
            8, 0, 16, 0, 0, 0, 1, 0,
        ]
        #expect(bytes == golden)
        #expect(RouteMessages.getLink(index: 9, seq: 1)[20..<24] == [9, 0, 0, 0])   // ifi_index
    }

    @Test func routeAndLinkRepliesGiveInterfaceAndMTU() {
        // RTM_NEWROUTE: rtmsg, RTA_OIF 3, RTA_METRICS { RTAX_MTU (2) 1400 }.
        var route: [UInt8] = [0, 0, 0, 0, 24, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 2, 32, 0, 0, 254, 2, 0, 1, 0, 0, 0, 0]
        route += [8, 0, 4, 0, 3, 0, 0, 0]
        route += [12, 0, 8, 0, 8, 0, 2, 0, 0x78, 0x05, 0, 0]
        #expect(RouteMessages.parseRoute(route).outputInterface == 3 && RouteMessages.parseRoute(route).mtu == 1400)
        // Without metrics (the interface decides), and a metric of 0 is none.
        #expect(RouteMessages.parseRoute(Array(route.prefix(36))).mtu == nil)
        let zero = Array(route.prefix(36)) + [12, 0, 8, 0, 8, 0, 2, 0, 0, 0, 0, 0]
        #expect(RouteMessages.parseRoute(zero).mtu == nil)
        // A truncated attribute ends the walk instead of reading past the message.
        #expect(RouteMessages.parseRoute(Array(route.prefix(40))).mtu == nil)
        // RTM_NEWLINK: ifinfomsg, IFLA_MTU (4) 1492.
        let link: [UInt8] = [0, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)
            + [8, 0, 4, 0, 0xd4, 0x05, 0, 0]
        #expect(RouteMessages.parseLinkMTU(link) == 1492)
    }

    @Test func verdictWithMarkMatchesGoldenBytes() {
        var buffer = [UInt8](repeating: 0xee, count: 128)
        let n = buffer.withUnsafeMutableBytes {
            QueueMessages.putVerdict(at: $0.baseAddress!, queue: 1, id: 7, verdict: .acceptWithMark(0x0003_0005), payload: nil)
        }
        let golden: [UInt8] = [
            // nlmsghdr: len 40, type NFNL_SUBSYS_QUEUE<<8 | NFQNL_MSG_VERDICT (0x0301), flags REQUEST
            40, 0, 0, 0, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, res_id = queue 1 (big endian)
            0, 0, 0, 1,
            // NFQA_VERDICT_HDR (2): verdict NF_ACCEPT (1), id 7, both big endian
            12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 7,
            // NFQA_MARK (3) = 0x00030005 big endian
            8, 0, 3, 0, 0, 3, 0, 5,
        ]
        #expect(n == 40)
        #expect(Array(buffer.prefix(n)) == golden)
    }

    @Test func verdictWithPayloadAppendsThePacket() {
        var buffer = [UInt8](repeating: 0, count: 256)
        let packet: [UInt8] = [0x45, 0, 0, 20, 1, 2, 3]
        let n = buffer.withUnsafeMutableBytes { raw in
            packet.withUnsafeBytes { QueueMessages.putVerdict(at: raw.baseAddress!, queue: 0, id: 1, verdict: .drop, payload: $0) }
        }
        // header 16 + nfgenmsg 4 + verdict hdr 12 + NFQA_PAYLOAD (10) 4+7 padded to 12
        #expect(n == 44)
        #expect(Array(buffer[24..<32]) == [0, 0, 0, 0, 0, 0, 0, 1])  // NF_DROP, id 1
        #expect(Array(buffer[32..<36]) == [11, 0, 10, 0])
        #expect(Array(buffer[36..<43]) == packet)
    }

    @Test func bindAsksForCopyPacketAndNoFailOpen() {
        var config = QueueConfig(number: 3)
        config.conntrack = true
        let bytes = QueueMessages.bind(config, seq: 10)
        // First message: NFQNL_MSG_CONFIG (0x0302), cmd BIND; second: params, maxlen, flags, mask.
        #expect(bytes[4] == 0x02 && bytes[5] == 0x03)
        #expect(bytes[6] & 0x04 != 0)  // NLM_F_ACK
        let first = Int(bytes[0])
        #expect(bytes[20 + 4] == 1)  // NFQNL_CFG_CMD_BIND
        #expect(bytes[first + 8] == 11)  // second seq
        #expect(config.flags == 0x2)  // CONNTRACK only, never FAIL_OPEN by default
        // NFQA_CFG_PARAMS: copy_range 0xffff, copy_mode NFQNL_COPY_PACKET (2)
        let params = first + 20
        #expect(Array(bytes[params..<(params + 9)]) == [9, 0, 2, 0, 0, 0, 0xff, 0xff, 2])
    }
}
