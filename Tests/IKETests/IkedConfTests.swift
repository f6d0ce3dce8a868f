// iked.conf(5) as encd-iked reads it: the issue's example, defaults, macros and
// includes, and an error for every bad clause at file:line:column, a PSK never shown.

import Config
import Crypto
import EncCore
import Foundation
import Testing
@testable import IKE
@testable import IKEConfig

@Suite struct IkedConfTests {
    static func parse(_ text: String, files: [String: String] = [:]) throws -> IkedConfiguration {
        try IkedConfParser.parse(text: text, fileName: "iked.conf") { path in
            guard let t = files[path] else { throw FileReadError(path: path, message: "No such file or directory") }
            return t
        }
    }

    static func errors(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch {
            return (error as? ConfigErrors)?.errors.map(\.description) ?? ["\(error)"]
        }
    }

    @Test func theIssuesExample() throws {
        let c = try Self.parse("""
            ikev2 "site2" active esp from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 \\
                ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 \\
                childsa enc aes-128-gcm srcid gw1.example.org dstid gw2.example.org \\
                lifetime 1h bytes 4G psk "not a real secret"
            """)
        let p = try #require(c.policies.first)
        #expect(p.name == "site2" && p.active && p.mode == .tunnel && p.peer == IPAddress("203.0.113.2"))
        #expect(p.localSelectors == [IKETrafficSelector(prefix: IPPrefix("198.18.1.0/24")!)])
        #expect(p.remoteSelectors == [IKETrafficSelector(prefix: IPPrefix("198.18.2.0/24")!)])
        #expect(p.ikeProposals.count == 1 && IKESuite(p.ikeProposals[0])?.group == .curve25519)
        #expect(IKESuite(p.ikeProposals[0])?.encryption == .aead(.aesGCM, keyBytes: 32))
        #expect(IKEChildSuite(p.childProposals[0])?.encryption == "aes-128-gcm")
        #expect(p.localID == IKEIdentity(type: 2, data: Array("gw1.example.org".utf8)))
        #expect(p.peerID == IKEIdentity("gw2.example.org"))
        #expect(p.childLifetimeSeconds == 3600 && p.childLifetimeBytes == 4 << 30)
        #expect(p.psk == SecretKey(Array("not a real secret".utf8)))
    }

    @Test func defaultsMacrosAndSet() throws {
        let c = try Self.parse("""
            gw2 = "203.0.113.2"
            key = "notarealsecret"
            set passive
            set dpd_check_interval 30
            ikev2 transport natt from 203.0.113.1 to $gw2 peer $gw2 psk $key
            ikev2 "road" from 198.18.1.0/24 to any peer any psk 0x0102030405060708
            """)
        #expect(c.settings.activeByDefault == false && c.settings.dpdCheckInterval == 30)
        #expect(c.policies.count == 2)
        let p = c.policies[0]
        #expect(p.name == "policy1" && !p.active && p.mode == .transport && p.forceNATT)
        #expect(p.ikeProposals == IkedConfParser.defaultIKEProposals && p.childProposals == IkedConfParser.defaultChildProposals)
        #expect(p.childLifetimeSeconds == 3 * 3600 && p.childLifetimeBytes == 512 << 20 && p.ikeLifetimeSeconds == 4 * 3600)
        #expect(c.policies[1].peer == nil && c.policies[1].remoteSelectors[0].prefixes == [IPPrefix("0.0.0.0/0")!])
        #expect(c.policies[1].psk == SecretKey(hex: "0102030405060708"))
    }

    @Test func activeByDefaultOnlyWithAPeer() throws {
        let c = try Self.parse("""
            ikev2 "a" from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 psk "x"
            ikev2 "b" from 198.18.1.0/24 to 198.18.3.0/24 psk "x"
            """)
        #expect(c.policies[0].active && !c.policies[1].active)
    }

    @Test func includeAndItsErrors() throws {
        let c = try Self.parse("include \"peers.conf\"\n", files: ["peers.conf": "ikev2 \"x\" from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.9 psk \"s\"\n"])
        #expect(c.policies.map(\.name) == ["x"])
        #expect(Self.errors("include \"missing.conf\"\n") == ["iked.conf:1:9: failed to include file missing.conf: No such file or directory"])
    }

    @Test func everyErrorNamesItsPlace() {
        let cases: [(String, String)] = [
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 ikesa enc 3des prf hmac-sha2-256 group modp2048 psk \"k\"",
             "iked.conf:1:70: 3des: refused: RFC 8247 says MUST NOT or SHOULD NOT"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 ikesa enc aes-256-gcm prf hmac-sha2-256 group modp1024 psk \"k\"",
             "iked.conf:1:106: modp1024: refused: RFC 8247 says MUST NOT or SHOULD NOT"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 childsa enc aes-256 psk \"k\"",
             "iked.conf:1:60: childsa enc aes-128/aes-256 needs an auth (hmac-sha2-256, -384 or -512)"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer gw2.example.org psk \"k\"",
             "iked.conf:1:48: \"gw2.example.org\" is not a numeric IPv4 or IPv6 address (host names are not looked up)"),
            ("ikev2 active from 198.18.1.0/24 to 198.18.2.0/24 psk \"k\"",
             "iked.conf:1:1: active ikev2 rule \"policy1\" needs a peer address to initiate to"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 psk \"k\" rsa",
             "iked.conf:1:68: rsa: the rule already has an authentication (one of psk, rsa, ecdsa256, ecdsa384, rfc7427)"),
            ("ikev2 from 198.18.1.1/24 to 198.18.2.0/24 peer 203.0.113.2 psk \"k\"",
             "iked.conf:1:12: \"198.18.1.1/24\" is not a numeric address or prefix without host bits (as 198.18.1.0/24)"),
            ("ikev2 from 198.18.1.0/24 to 2001:db8::/32 peer 203.0.113.2 psk \"k\"",
             "iked.conf:1:29: 2001:db8::/32 is inet6, the rule is inet"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 srcid \"CN=gw1, bogus\"",
             "iked.conf:1:66: srcid \"CN=gw1, bogus\": not a distinguished name (\"/O=org/CN=name\" or \"O=org, CN=name\" with known attribute names)"),
            ("set mobike", "iked.conf:1:5: mobike: encd-iked does not do MOBIKE (RFC 4555); NATed peers are followed without it"),
            ("ikev1 from any to any", "iked.conf:1:1: IKEv1 is not supported: encd-iked speaks IKEv2 only"),
            ("ikev2 from 198.18.1.0/24 port 80 to 198.18.2.0/24 peer 203.0.113.2 psk \"k\"",
             "iked.conf:1:26: port needs proto tcp, udp or sctp"),
            ("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 lifetime 0 psk \"k\"",
             "iked.conf:1:69: \"0\" is not a time from 1 second to 365 days"),
            ("ikev2 \"a\" from 198.18.1.0/24 to 198.18.2.0/24 psk \"k\"\nikev2 \"a\" from 198.18.1.0/24 to 198.18.2.0/24 psk \"k\"",
             "iked.conf:2:7: policy \"a\" is already defined at iked.conf:1:1"),
        ]
        for (text, expected) in cases {
            #expect(Self.errors(text) == [expected], "\(text)")
        }
    }

    @Test func certificateAuthentication() throws {
        let c = try IkedConfParser.parse(text: """
            ikev2 "any" from 198.18.1.0/24 to 198.18.2.0/24 peer 203.0.113.2 srcid "/O=encd/CN=gw1" dstid "O=encd, CN=gw2"
            ikev2 "p384" from 198.18.1.0/24 to 198.18.3.0/24 peer 203.0.113.3 ecdsa384
            ikev2 "rsa" from 198.18.1.0/24 to 198.18.4.0/24 peer 203.0.113.4 rsa
            ikev2 "7427" from 198.18.1.0/24 to 198.18.5.0/24 peer 203.0.113.5 rfc7427
            """, fileName: "iked.conf")
        // Without an authentication: a certificate and any signature method (as iked).
        #expect(c.policies.map(\.authentication) == [.signature(method: nil), .signature(method: 10), .signature(method: 1), .signature(method: 14)])
        #expect(c.policies[0].localID?.type == 9 && c.policies[0].peerID?.type == 9)
        #expect(c.policies[0].localID?.description == "O=encd, CN=gw1" && c.policies[0].peerID?.description == "O=encd, CN=gw2")
        #expect(c.policies[0].psk == nil)
    }

    @Test func thePSKIsNeverPrinted() {
        let errors = Self.errors("ikev2 from 198.18.1.0/24 to 198.18.2.0/24 psk \"hunter2-secret\" psk \"hunter2-secret\"\nset bogus")
        #expect(errors.count == 2)
        #expect(!errors.joined().contains("hunter2"))
    }

    @Test func groupOrWorldAccessibleFilesAreRefused() throws {
        let path = NSTemporaryDirectory() + "iked-\(getpid()).conf"
        defer { unlink(path) }
        try "ikev2 from 198.18.1.0/24 to 198.18.2.0/24 psk \"k\"\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o640)
        #expect(throws: ConfigErrors.self) { try IkedConfParser.load(path: path) }
        chmod(path, 0o600)
        #expect(try IkedConfParser.load(path: path).policies.count == 1)
    }
}
