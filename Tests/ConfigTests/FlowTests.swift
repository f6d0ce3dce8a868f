// flow rules: directions, mirroring, peers, lists, proto/port, types, ids.

import Testing
import EncCore
import IPsec
@testable import Config

@Suite struct FlowTests {
    @Test func ruleWithoutDirectionYieldsOutAndMirroredIn() throws {
        let c = try parse("flow esp proto tcp from 10.1.0.0/24 port 1234 to 10.2.0.0/24 port ssh peer 192.0.2.2\n")
        #expect(c.flows.count == 2)
        let out = c.flows[0], inb = c.flows[1]
        #expect(out.direction == .outbound && inb.direction == .inbound)
        #expect(out.source == net("10.1.0.0/24") && out.destination == net("10.2.0.0/24"))
        #expect(out.sourcePort == 1234 && out.destinationPort == 22)
        #expect(inb.source == net("10.2.0.0/24") && inb.destination == net("10.1.0.0/24"))
        #expect(inb.sourcePort == 22 && inb.destinationPort == 1234)
        #expect(inb.peer == ip("192.0.2.2") && out.peer == ip("192.0.2.2"))
        #expect(out.upperProtocol == 6 && inb.upperProtocol == 6)
        #expect(out.type == .require && out.proto == .esp)
    }

    @Test func peerDefaultsToDestinationHostForOut() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 to 192.0.2.2\n")
        #expect(c.flows.count == 1)
        #expect(c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func peerDefaultsToSourceHostForIn() throws {
        let c = try parse("flow ah in from 192.0.2.2 to 10.1.0.0/24\n")
        #expect(c.flows[0].peer == ip("192.0.2.2"))
        #expect(c.flows[0].proto == .ah)
    }

    @Test func networkDestinationWithoutPeerIsAnError() {
        let e = error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24\n")
        #expect(e?.message == "no peer specified for destination 10.2.0.0/24")
        #expect(e?.line == 1 && e?.column == 34)
    }

    @Test func peerAnyLeavesPeerUnset() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer any\n")
        #expect(c.flows[0].peer == nil)
    }

    @Test func localIsKeptAndMirrored() throws {
        let c = try parse("flow esp from 10.1.0.0/24 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2\n")
        #expect(c.flows.map(\.local) == [ip("192.0.2.1"), ip("192.0.2.1")])
    }

    @Test func localMayPrecedePeer() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2\n")
        #expect(c.flows[0].local == ip("192.0.2.1") && c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func toBeforeFromIsAccepted() throws {
        let c = try parse("flow esp out to 10.2.0.0/24 from 10.1.0.0/24 peer 192.0.2.2\n")
        #expect(c.flows[0].source == net("10.1.0.0/24"))
        #expect(c.flows[0].destination == net("10.2.0.0/24"))
    }

    @Test func anyExpandsPerAddressFamily() throws {
        let c = try parse("flow esp out from any to any peer 192.0.2.2\n")
        #expect(c.flows.map(\.source) == [.any(.inet), .any(.inet6)])
        #expect(c.flows.map(\.destination) == [.any(.inet), .any(.inet6)])
    }

    @Test func listsExpandToCrossProductSkippingMixedFamilies() throws {
        let c = try parse("flow esp out from { 10.1.0.0/24, 2001:db8:1::/48 10.3.0.0/24 } to { 10.2.0.0/24, 2001:db8:2::/48 } peer 192.0.2.2\n")
        let pairs = c.flows.map { "\($0.source) \($0.destination)" }
        #expect(pairs == ["10.1.0.0/24 10.2.0.0/24", "2001:db8:1::/48 2001:db8:2::/48", "10.3.0.0/24 10.2.0.0/24"])
    }

    @Test func outAndInAreInterleavedPerPair() throws {
        let c = try parse("flow esp from { 10.1.0.0/24, 10.3.0.0/24 } to 10.2.0.0/24 peer 192.0.2.2\n")
        #expect(c.flows.map(\.direction) == [.outbound, .inbound, .outbound, .inbound])
        #expect(c.flows[2].source == net("10.3.0.0/24"))
    }

    @Test func mismatchedFamiliesAreAnError() {
        let e = error("flow esp out from 10.1.0.0/24 to 2001:db8::/32 peer 192.0.2.2\n")
        #expect(e?.message == "source/destination address families do not match")
    }

    @Test func ipv6FlowOverIPv4Peer() throws {
        let c = try parse("flow esp out from 2001:db8:1::/48 to 2001:db8:2::1 peer 192.0.2.2\n")
        #expect(c.flows[0].destination.isHost)
        #expect(c.flows[0].peer == ip("192.0.2.2"))
    }

    @Test func everyFlowTypeIsAccepted() throws {
        for t in FlowType.allCases {
            let c = try parse("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type \(t)\n")
            #expect(c.flows[0].type == t)
        }
    }

    @Test func denyAndBypassCarryNoPeerLocalOrIds() throws {
        let c = try parse("""
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 type bypass
            flow esp out from 10.1.0.0/24 to 10.9.0.0/24 local 192.0.2.1 peer 192.0.2.2 srcid a dstid b type deny
            """)
        #expect(c.flows.allSatisfy { $0.peer == nil && $0.local == nil && $0.sourceID == nil && $0.destinationID == nil })
    }

    @Test func unknownFlowTypeIsAnError() {
        let e = error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type always\n")
        #expect(e?.message == "expected a flow type (use, acquire, require, dontacq, deny, bypass) after \"type\", found \"always\"")
        #expect(e?.column == 66)
    }

    @Test func idsAreKept() throws {
        let c = try parse("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 srcid gw1.example.org dstid admin@example.org\n")
        #expect(c.flows[0].sourceID == "gw1.example.org")
        #expect(c.flows[0].destinationID == "admin@example.org")
    }

    @Test func protoByNameAndNumber() throws {
        let c = try parse("""
            flow esp out proto icmp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            flow esp out proto ipv6-icmp from 2001:db8:1::/48 to 2001:db8:2::/48 peer 192.0.2.2
            flow esp out proto icmp6 from 2001:db8:1::/48 to 2001:db8:2::/48 peer 192.0.2.2
            flow esp out proto 47 from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            flow esp out proto gre from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            flow esp out proto esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            """)
        #expect(c.flows.map(\.upperProtocol) == [1, 58, 58, 47, 47, 50])
    }

    @Test func unknownProtocolAndOutOfRange() {
        #expect(error("flow esp out proto xyz from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2\n")?.message == "unknown protocol: xyz")
        #expect(error("flow esp out proto 256 from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2\n")?.message == "protocol outside range")
    }

    @Test func portsNeedTCPOrUDP() {
        let e = error("flow esp out from 10.1.0.0/24 port 80 to 10.2.0.0/24 peer 192.0.2.2\n")
        #expect(e?.message == "no protocol supplied with source/destination ports")
        #expect(e?.column == 31)
        #expect(error("flow esp out proto icmp from 10.1.0.0/24 to 10.2.0.0/24 port www peer 192.0.2.2\n")?.message
                == "no protocol supplied with source/destination ports")
    }

    @Test func portByNameAndNumber() throws {
        let c = try parse("flow esp out proto udp from 10.1.0.0/24 port domain to 10.2.0.0/24 port 4500 peer 192.0.2.2\n")
        #expect(c.flows[0].sourcePort == 53 && c.flows[0].destinationPort == 4500)
        #expect(error("flow esp out proto udp from 10.1.0.0/24 port nosuch to 10.2.0.0/24 peer 192.0.2.2\n")?.message == "unknown port: nosuch")
        #expect(error("flow esp out proto udp from 10.1.0.0/24 port 65536 to 10.2.0.0/24 peer 192.0.2.2\n")?.message == "port outside range")
    }

    @Test func hostNamesAreRefused() {
        let e = error("flow esp out from 10.1.0.0/24 to gw.example.org\n")
        #expect(e?.message == "host names are not resolved: use a numeric address instead of \"gw.example.org\"")
        #expect(e?.column == 34)
        #expect(error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer gw\n")?.message
                == "host names are not resolved: use a numeric address instead of \"gw\"")
    }

    @Test func malformedNumericAddressIsAnError() {
        #expect(error("flow esp out from 10.1.0.300/24 to 10.2.0.0/24 peer 192.0.2.2\n")?.message == "invalid address \"10.1.0.300\"")
    }

    @Test func prefixLengthIsChecked() {
        let e = error("flow esp out from 10.1.0.0/33 to 10.2.0.0/24 peer 192.0.2.2\n")
        #expect(e?.message == "invalid prefix length 33 for 10.1.0.0: at most 32")
        #expect(e?.column == 28)
    }

    @Test func hostBitsAreMaskedWithAWarning() throws {
        let c = try parse("flow esp out from 10.1.0.5/24 to 10.2.0.0/24 peer 192.0.2.2\n")
        #expect(c.flows[0].source == net("10.1.0.0/24"))
        #expect(c.warnings.map(\.description) == ["/etc/encd/ipsec.conf:1:19: host bits of 10.1.0.5/24 are set: using 10.1.0.0/24"])
    }

    @Test func peerMustBeASingleAddress() {
        #expect(error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.0/24\n")?.message
                == "peer must be a single address, not a network")
    }

    @Test func clauseGivenTwiceIsAnError() {
        #expect(error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 peer 192.0.2.3\n")?.message == "peer already given")
    }

    @Test func unknownClauseNamesTheAlternatives() {
        let e = error("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 foo\n")
        #expect(e?.message == "expected \"local\", \"peer\", \"srcid\", \"dstid\", \"type\" or end of line in flow rule, found \"foo\"")
        #expect(e?.column == 61)
    }

    @Test func missingToNamesWhatWasFound() {
        let e = error("flow esp out from 10.1.0.0/24 foo 10.2.0.0/24\n")
        #expect(e?.description == "/etc/encd/ipsec.conf:1:31: expected \"to\" after source address, found \"foo\"")
    }

    @Test func unsupportedRuleKindsSaySo() {
        #expect(error("ike esp from 10.1.0.0/24 to 10.2.0.0/24\n")?.message
                == "ike rules are not supported: encd does manual keying of esp and ah only")
        #expect(error("flow ipcomp out from 10.1.0.0/24 to 10.2.0.0/24\n")?.message
                == "ipcomp flows are not supported: encd does esp and ah only")
    }
}
