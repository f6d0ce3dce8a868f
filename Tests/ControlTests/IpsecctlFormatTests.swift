// Golden text for every `encctl -s` format: flows of each type, SAs of each kind
// (tunnel/transport, ESP/AH, CBC+HMAC, GCM, null, udpencap, esn, replay, lifetimes),
// -s all empty and full, -k continuation lines, -v/-vv details. The flow and SA lines
// are Config.Printer's (what encd reports); the framing, sorting and details are
// IpsecctlFormat's. Expected text follows ipsecctl.c (ipsecctl_show, print_flow,
// print_sa) and pfkdump.c (print_sa, print_flags, print_counter) of OpenBSD.

import Testing
import Config
import IPsec
@testable import Control

let flowConfig = """
    flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
    flow esp in proto tcp from 10.2.0.0/24 port 80 to 10.1.0.5 local 192.0.2.1 peer 192.0.2.2 type use
    flow ah out from 2001:db8:1::/64 to 2001:db8:2::/64 peer 2001:db8:ff::2 type acquire
    flow esp out from 10.3.0.0/16 to any peer any type dontacq
    flow esp out proto udp from 192.0.2.1 to 192.0.2.2 port 500 type bypass
    flow esp in from 198.51.100.0/24 to 10.1.0.0/24 type deny
    """

let flowGolden = """
    flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require
    flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require
    flow esp in proto tcp from 10.2.0.0/24 port www to 10.1.0.5 local 192.0.2.1 peer 192.0.2.2 type use
    flow ah out from 2001:db8:1::/64 to 2001:db8:2::/64 peer 2001:db8:ff::2 type acquire
    flow esp out from 10.3.0.0/16 to 0.0.0.0/0 peer any type dontacq
    flow esp out proto udp from 192.0.2.1 to 192.0.2.2 port isakmp type bypass
    flow esp in from 198.51.100.0/24 to 10.1.0.0/24 type deny

    """

/// SAs deliberately out of SPI order: -s sa sorts them.
let saConfig = """
    set ipsec.replay_window 64
    esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x2000:0x1000 auth hmac-sha2-256 enc aes \
        authkey \(TestKeys.auth1):\(TestKeys.auth2) enckey \(TestKeys.enc1):\(TestKeys.enc2)
    esp transport from 2001:db8::1 to 2001:db8::2 spi 0x3000 udpencap esn enc aes-128-gcm enckey \(TestKeys.gcm1)
    esp from 192.0.2.1 to 198.51.100.9 spi 0x500 udpencap port 4600 peerport 31000 replay 128 \
        lifetime soft bytes 900M seconds 3000 lifetime hard packets 1000 seconds 3600 firstuse 600 \
        enc aes-128-gcm enckey \(TestKeys.gcm2)
    ah transport from 192.0.2.1 to 192.0.2.2 spi 0x1234 auth hmac-sha1 authkey \(TestKeys.sha1)
    esp from 192.0.2.2 to 192.0.2.1 spi 0x4000 auth hmac-sha2-256 enc null authkey \(TestKeys.auth1)
    """

let saGolden = """
    esp tunnel from 192.0.2.1 to 198.51.100.9 spi 0x00000500 udpencap port 4600 peerport 31000 replay 128 lifetime soft bytes 943718400 seconds 3000 lifetime hard packets 1000 seconds 3600 firstuse 600 enc aes-128-gcm
    esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001000 auth hmac-sha2-256 enc aes
    ah transport from 192.0.2.1 to 192.0.2.2 spi 0x00001234 auth hmac-sha1
    esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00002000 auth hmac-sha2-256 enc aes
    esp transport from 2001:db8::1 to 2001:db8::2 spi 0x00003000 udpencap port 4500 esn enc aes-128-gcm
    esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00004000 auth hmac-sha2-256 enc null

    """

func goldenFlows() throws -> [FlowStatus] {
    try parseConfig(flowConfig).flows.map(flowStatus)
}

/// Directions as seen from 192.0.2.1 / 2001:db8::1.
func goldenSAs(showKeys: Bool) throws -> [SAStatus] {
    let c = try parseConfig(saConfig)
    return c.sas.map { s in
        let local = ["192.0.2.1", "2001:db8::1"].contains("\(s.source)")
        return saStatus(s, direction: local ? "out" : "in", showKeys: showKeys,
                        defaultReplayWindow: c.tunables.replayWindow)
    }
}

@Suite struct IpsecctlFormatTests {
    @Test func showFlowPrintsEveryTypeInDaemonOrder() throws {
        #expect(IpsecctlFormat.show(.flow, flows: try goldenFlows(), sas: []) == flowGolden)
    }

    @Test func showSAPrintsEveryKindSortedBySPI() throws {
        #expect(IpsecctlFormat.show(.sa, flows: [], sas: try goldenSAs(showKeys: false)) == saGolden)
    }

    @Test func showFlowAndSAPrintNothingWhenEmpty() {
        #expect(IpsecctlFormat.show(.flow, flows: [], sas: []) == "")
        #expect(IpsecctlFormat.show(.sa, flows: [], sas: []) == "")
    }

    @Test func showAllEmptySaysNoFlowsAndNoEntries() {
        #expect(IpsecctlFormat.show(.all, flows: [], sas: []) == "FLOWS:\nNo flows\n\nSAD:\nNo entries\n")
    }

    @Test func showAllFullHasTitlesAndOneBlankLine() throws {
        let text = IpsecctlFormat.show(.all, flows: try goldenFlows(), sas: try goldenSAs(showKeys: false))
        #expect(text == "FLOWS:\n" + flowGolden + "\nSAD:\n" + saGolden)
    }

    @Test func showAllWithFlowsOnlyOrSAsOnly() throws {
        let flows = try goldenFlows()
        let sas = try goldenSAs(showKeys: false)
        #expect(IpsecctlFormat.show(.all, flows: flows, sas: []) == "FLOWS:\n" + flowGolden + "\nSAD:\nNo entries\n")
        #expect(IpsecctlFormat.show(.all, flows: [], sas: sas) == "FLOWS:\nNo flows\n\nSAD:\n" + saGolden)
    }

    @Test func showKeysAddsContinuationLines() throws {
        let sas = try goldenSAs(showKeys: true)
        let text = IpsecctlFormat.show(.sa, flows: [], sas: sas, style: ShowStyle(showKeys: true))
        let a1 = TestKeys.auth1, a2 = TestKeys.auth2, e1 = TestKeys.enc1, e2 = TestKeys.enc2
        #expect(text == """
            esp tunnel from 192.0.2.1 to 198.51.100.9 spi 0x00000500 udpencap port 4600 peerport 31000 replay 128 lifetime soft bytes 943718400 seconds 3000 lifetime hard packets 1000 seconds 3600 firstuse 600 enc aes-128-gcm \\
            \tenckey \(TestKeys.gcm2)
            esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001000 auth hmac-sha2-256 enc aes \\
            \tauthkey \(a2) \\
            \tenckey \(e2)
            ah transport from 192.0.2.1 to 192.0.2.2 spi 0x00001234 auth hmac-sha1 \\
            \tauthkey \(TestKeys.sha1)
            esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00002000 auth hmac-sha2-256 enc aes \\
            \tauthkey \(a1) \\
            \tenckey \(e1)
            esp transport from 2001:db8::1 to 2001:db8::2 spi 0x00003000 udpencap port 4500 esn enc aes-128-gcm \\
            \tenckey \(TestKeys.gcm1)
            esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00004000 auth hmac-sha2-256 enc null \\
            \tauthkey \(a1)

            """)
    }

    @Test func keysFromTheDaemonAreCutWithoutK() throws {
        // A daemon that sends keys although -k was not asked for: encctl drops them.
        let text = IpsecctlFormat.show(.all, flows: [], sas: try goldenSAs(showKeys: true), style: ShowStyle(verbose: 2))
        for k in TestKeys.all { #expect(!text.contains(k)) }
        #expect(!text.contains("authkey") && !text.contains("enckey"))
    }

    @Test func verboseDetailsOfAFreshOutboundTunnelSA() throws {
        let sa = try goldenSAs(showKeys: false).first { $0.spi == 0x2000 }!
        #expect(IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1)) == """
            esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00002000 auth hmac-sha2-256 enc aes
            \tsa: spi 0x00002000 auth hmac-sha2-256 enc aes
            \t\tstate mature replay 64 flags 0x4<tunnel>
            \tdirection: out
            \tsequence: next 1
            \tlifetime_cur: bytes 0 packets 0 seconds 0 firstuse never

            """)
    }

    @Test func verboseDetailsOfAnInboundSAWithTrafficLifetimesAndNATT() throws {
        var sa = try goldenSAs(showKeys: false).first { $0.spi == 0x500 }!
        sa.direction = "in"
        sa.state = "soft-expired"
        sa.sequence = 41
        sa.packets = 40
        sa.bytes = 5904
        sa.drops = 3
        sa.replayDrops = 1
        sa.authFailures = 2
        sa.age = 12
        sa.sinceFirstUse = 3
        sa.softSecondsLeft = 2988
        sa.softBytesLeft = 943712496
        sa.hardPacketsLeft = 960
        sa.hardSecondsLeft = 3588
        sa.natPeer = "198.51.100.9:31000"
        #expect(IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1)) == """
            esp tunnel from 192.0.2.1 to 198.51.100.9 spi 0x00000500 udpencap port 4600 peerport 31000 replay 128 lifetime soft bytes 943718400 seconds 3000 lifetime hard packets 1000 seconds 3600 firstuse 600 enc aes-128-gcm
            \tsa: spi 0x00000500 auth none enc aes-128-gcm
            \t\tstate soft-expired replay 128 flags 0x204<tunnel,udpencap>
            \tdirection: in
            \tsequence: highest 41
            \tlifetime_cur: bytes 5904 packets 40 seconds 12 firstuse 3
            \tlifetime_soft: bytes 943712496 seconds 2988 left
            \tlifetime_hard: packets 960 seconds 3588 left
            \tudpencap: peer 198.51.100.9:31000
            \tcounter:
            \t\t40 input packets
            \t\t5904 input bytes
            \t\t3 packets dropped on input
            \t\t1 possibly replayed packet received
            \t\t2 packets that failed verification received

            """)
    }

    @Test func verboseDetailsNameTheKeyDaemonThatOwnsAnSAAndHowLongItIdled() throws {
        var sa = try goldenSAs(showKeys: false).first { $0.spi == 0x3000 }!
        #expect(!IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1)).contains("owner:"))
        sa.owner = "encd-iked"
        sa.child = 7
        sa.idle = 1
        let v = IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1))
        #expect(v.contains("\towner: encd-iked child 7\n\tidle: 1 second\n"))
        sa.child = nil
        sa.idle = 30
        #expect(IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1)).contains("\towner: encd-iked\n\tidle: 30 seconds\n"))
    }

    @Test func verboseCountersUseSingularForOneAndHideZerosUnlessVV() throws {
        var sa = try goldenSAs(showKeys: false).first { $0.spi == 0x3000 }!
        sa.packets = 1
        sa.bytes = 1
        let v1 = IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 1))
        #expect(v1.hasSuffix("\tcounter:\n\t\t1 output packet\n\t\t1 output byte\n"))
        #expect(v1.contains("\t\tstate mature replay 64 flags 0x600<udpencap,esn>\n"))
        let v2 = IpsecctlFormat.sa(sa, style: ShowStyle(verbose: 2))
        #expect(v2.hasSuffix("\tcounter:\n\t\t1 output packet\n\t\t1 output byte\n\t\t0 packets dropped on output\n"))
    }

    @Test func verboseFlagsZeroPrintsLikePercentHashX() throws {
        let ah = try goldenSAs(showKeys: false).first { $0.spi == 0x1234 }!
        let text = IpsecctlFormat.sa(ah, style: ShowStyle(verbose: 1))
        #expect(text.contains("\tsa: spi 0x00001234 auth hmac-sha1 enc none\n\t\tstate mature replay 64 flags 0<>\n"))
    }

    @Test func verboseListsDaemonFlagsWithoutAnOpenBSDBitLast() {
        let sa = SAStatus(text: "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes",
                          proto: "esp", spi: 0x1000, source: "192.0.2.1", destination: "192.0.2.2", direction: "out",
                          state: "exhausted", replayWindow: 0, sequence: 4294967296, packets: 0, bytes: 0, drops: 0,
                          replayDrops: 0, authFailures: 0, age: 0, sinceFirstUse: nil,
                          flags: ["replay", "esn", "tunnel", "tfc", "transport"])
        #expect(IpsecctlDetails.flags(sa, mode: "tunnel") == "0x404<tunnel,esn,tfc>")
    }

    @Test func verboseAddsNothingToFlows() throws {
        #expect(IpsecctlFormat.show(.flow, flows: try goldenFlows(), sas: [], style: ShowStyle(verbose: 2)) == flowGolden)
    }
}
