// The ipsecctl(8) output format (golden text) and parse → print → parse round trips.

import Foundation
import Testing
import Crypto
import EncCore
import IPsec
@testable import Config

@Suite struct PrinterTests {
    @Test func flowGoldenText() throws {
        let c = try parse("""
            flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            flow ah out proto tcp from 10.1.0.0/24 port 1234 to 192.0.2.7 port www local 192.0.2.1 srcid a.example dstid "b c"
            flow esp out from any to 10.9.0.0/16 type bypass
            flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer any type use
            """)
        let text = c.flows.map(Printer.flow)
        #expect(text == [
            "flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require",
            "flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require",
            "flow ah out proto tcp from 10.1.0.0/24 port 1234 to 192.0.2.7 port www local 192.0.2.1 peer 192.0.2.7 srcid a.example dstid \"b c\" type require",
            "flow esp out from 0.0.0.0/0 to 10.9.0.0/16 type bypass",
            "flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer any type use",
        ])
    }

    @Test func saGoldenText() throws {
        let c = try parse("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 authkey \(authK1):\(authK2) enckey \(encK1):\(encK2)
            ah transport from 2001:db8::1 to 2001:db8::2 spi 300 auth hmac-sha2-512 authkey 0x\(String(repeating: "ee", count: 64))
            """)
        #expect(c.sas.map { Printer.sa($0) } == [
            "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes",
            "esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes",
            "ah transport from 2001:db8::1 to 2001:db8::2 spi 0x0000012c auth hmac-sha2-512",
        ])
        #expect(Printer.sa(c.sas[0], showKeys: true) ==
            "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes \\\n"
            + "\tauthkey \(authK1) \\\n"
            + "\tenckey \(encK1)")
    }

    @Test func saExtensionsGoldenText() throws {
        let key = "0x" + String(repeating: "11", count: 36)
        let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x2000 udpencap port 4501 peerport 31000 replay 256 esn lifetime soft bytes 1G lifetime hard seconds 3600 firstuse 60 enc chacha20-poly1305 enckey \(key)\n").sas[0]
        #expect(Printer.sa(sa) == "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00002000 udpencap port 4501 peerport 31000 replay 256 esn lifetime soft bytes 1073741824 lifetime hard seconds 3600 firstuse 60 enc chacha20-poly1305")
    }

    @Test func configurationRoundTrips() throws {
        let gcmKey = "0x" + String(repeating: "22", count: 36)
        let original = try parse("""
            set ipsec.replay_window 64
            set net.inet.esp.udpencap_port 4600
            flow esp from { 10.1.0.0/24, 2001:db8:1::/48 } to { 10.2.0.0/24, 2001:db8:2::/48 } peer 192.0.2.2
            flow ah in proto udp from 10.3.0.0/16 port domain to 10.1.0.0/24 port 4500 local 192.0.2.1 peer any srcid "x y" type dontacq
            flow esp out proto 132 from any to 10.9.0.0/16 type deny
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 udpencap authkey \(authK1):\(authK2) enckey \(encK1):\(encK2)
            esp transport from 192.0.2.1 to 192.0.2.3 spi 0x3000 replay 0 esn lifetime soft packets 10 lifetime hard packets 20 enc aes-256-gcm enckey \(gcmKey)
            ah from 192.0.2.1 to 192.0.2.4 spi 0x4000 replay 2048 auth hmac-md5 authkey 0x\(String(repeating: "33", count: 16))
            """)
        let printed = Printer.configuration(original, showKeys: true)
        let reparsed = try parse(printed)
        #expect(sameConfiguration(original, reparsed), "\(printed)")
        #expect(Printer.configuration(reparsed, showKeys: true) == printed)
    }

    @Test func printedConfigurationWithoutKeysHasNone() throws {
        let c = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)\n")
        #expect(Printer.configuration(c) == "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes\n")
    }
}

@Suite struct DocumentationExampleTests {
    /// The first literal block of the EXAMPLES section of man/ipsec.conf.5 (the mdoc
    /// source of Docs/ipsec.conf.5.md), with mdoc's escapes undone.
    static func manPageExample() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("man/ipsec.conf.5"), encoding: .utf8)
        let lines = page.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let section = lines.firstIndex(of: ".Sh EXAMPLES"),
              let open = lines[section...].firstIndex(where: { $0.hasPrefix(".Bd -literal") }),
              let close = lines[open...].firstIndex(of: ".Ed") else { return "" }
        return lines[(open + 1)..<close]
            .map { $0.replacingOccurrences(of: "\\&", with: "").replacingOccurrences(of: "\\e", with: "\\") }
            .joined(separator: "\n")
    }

    @Test func manPageExampleParses() throws {
        let example = try Self.manPageExample()
        #expect(example.contains("flow esp from $local_net to $remote_net peer $gw"))
        let k = "/etc/encd/keys/"
        let files = [k + "auth-out": String(authK1.dropFirst(2)), k + "auth-in": String(authK2.dropFirst(2)),
                     k + "enc-out": String(encK1.dropFirst(2)), k + "enc-in": String(encK2.dropFirst(2)),
                     k + "gcm-out": String(repeating: "77", count: 36), k + "gcm-in": String(repeating: "88", count: 36)]
        let c = try parse(example, files: files)
        #expect(c.flows.count == 4 && c.sas.count == 4)
        #expect(c.flows[2].type == .bypass && c.flows[2].destinationPort == 500)
        #expect(c.sas.allSatisfy { $0.replayWindow == 256 })
        #expect(c.sas[2].encapsulation == UDPEncapsulation(port: 4500, peerPort: 31000))
        #expect(c.sas[3].hardLifetime.bytes == 1000 << 30)
    }
}
