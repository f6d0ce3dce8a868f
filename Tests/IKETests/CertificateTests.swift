// Certificate authentication (RFC 7296 §2.15, §3.5-§3.8; RFC 7427; RFC 4754): the
// AlgorithmIdentifiers of RFC 7427 Appendix A, chains against the configured CAs and a
// CRL, the ID/certificate match, every AUTH method signed and verified with the
// fixtures of Fixtures/pki (made by its make.sh with the openssl command), the
// credentials directory, and two engines authenticating each other with certificates.

import Crypto
import EncCore
import Foundation
import IKECrypto
import Testing
@testable import IKE

enum PKI {
    static func bytes(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/pki"))
        return Array(try Data(contentsOf: url))
    }
    static func cert(_ name: String) throws -> IKECertificate {
        try #require(IKECertificate.certificates(in: try bytes(name + ".pem")).first)
    }
    static func key(_ name: String) throws -> IKEKey { try IKEKey(privateKey: try bytes(name + ".key")) }
    static func trust(crl: Bool = false, cas: [String] = ["ca"]) throws -> IKETrustStore {
        try IKETrustStore(authorities: try cas.map(cert), crls: crl ? [try bytes("crl.pem")] : [])
    }
    /// Credentials of one gateway: its key, its certificate (and `extra` in certs/), the test CA.
    static func credentials(_ name: String, extra: [String] = []) throws -> IKECredentials {
        IKECredentials(trust: try trust(), key: try key(name), certificates: try ([name] + extra).map(cert))
    }

    /// A directory laid out as encd-iked's -C: ca/, certs/, crls/, private/local.key.
    static func directory(key: String, certs: [String], keyMode: mode_t = 0o600) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("encd-pki-\(UUID().uuidString)").path
        for sub in ["ca", "certs", "crls", "private"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try Data(try bytes("ca.pem")).write(to: URL(fileURLWithPath: dir + "/ca/ca.pem"))
        try Data(try bytes("crl.pem")).write(to: URL(fileURLWithPath: dir + "/crls/ca.crl"))
        for c in certs { try Data(try bytes(c + ".pem")).write(to: URL(fileURLWithPath: dir + "/certs/\(c).pem")) }
        try Data(try bytes(key + ".key")).write(to: URL(fileURLWithPath: dir + "/private/local.key"))
        chmod(dir + "/private/local.key", keyMode)
        return dir
    }
}

@Suite struct CertificateTests {
    static func hex(_ s: String) -> [UInt8] { Hex.decode(s.filter { !$0.isWhitespace })! }

    // RFC 7427 Appendix A: A.1.3 sha256WithRSAEncryption, A.3.1 ecdsa-with-sha256,
    // A.3.2 ecdsa-with-sha384; RSASSA-PSS with SHA-256, MGF1-SHA-256 and 32 bytes of
    // salt as OpenSSL and strongSwan encode it (RFC 4055 §3.1).
    static let sha256RSA = hex("300d06092a864886f70d01010b0500")
    static let ecdsaSHA256 = hex("300a06082a8648ce3d040302")
    static let ecdsaSHA384 = hex("300a06082a8648ce3d040303")
    static let pssSHA256 = hex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120")

    @Test func algorithmIdentifiersOfRFC7427() {
        #expect(IKESignatureScheme.rsaPKCS1(.sha256).algorithmIdentifier == Self.sha256RSA)
        #expect(IKESignatureScheme.ecdsa(.sha256).algorithmIdentifier == Self.ecdsaSHA256)
        #expect(IKESignatureScheme.ecdsa(.sha384).algorithmIdentifier == Self.ecdsaSHA384)
        #expect(IKESignatureScheme.rsaPSS(.sha256, salt: 32).algorithmIdentifier == Self.pssSHA256)
        for scheme in [IKESignatureScheme.rsaPKCS1(.sha384), .rsaPKCS1(.sha512), .ecdsa(.sha512), .rsaPSS(.sha384, salt: 48), .rsaPSS(.sha512, salt: 20)] {
            #expect(IKESignatureScheme(algorithmIdentifier: scheme.algorithmIdentifier) == scheme)
        }
        #expect(IKESignatureScheme(algorithmIdentifier: Self.pssSHA256) == .rsaPSS(.sha256, salt: 32))
        // PKCS#1 without its NULL is still PKCS#1; PSS with no parameters is SHA-1 and 20 bytes.
        #expect(IKESignatureScheme(algorithmIdentifier: Self.hex("300b06092a864886f70d01010b")) == .rsaPKCS1(.sha256))
        #expect(IKESignatureScheme(algorithmIdentifier: Self.hex("300d06092a864886f70d01010a3000")) == .rsaPSS(.sha1, salt: 20))
    }

    @Test func malformedAlgorithmIdentifiersAreRefusedNotTrapped() {
        #expect(IKESignatureScheme(algorithmIdentifier: []) == nil)
        #expect(IKESignatureScheme(algorithmIdentifier: Array(Self.sha256RSA.dropLast())) == nil)
        #expect(IKESignatureScheme(algorithmIdentifier: Self.sha256RSA + [0]) == nil)
        #expect(IKESignatureScheme(algorithmIdentifier: Self.hex("308400000010")) == nil)   // length past the end
        #expect(IKESignatureScheme(algorithmIdentifier: Self.hex("300a06082a8648ce3d040302" ).map { $0 == 0x02 ? 0x09 : $0 }) == nil)
        // PSS whose MGF1 hash differs from its hash.
        let mixed = Self.hex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020120")
        #expect(IKESignatureScheme(algorithmIdentifier: mixed) == nil)
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        for n in 0..<3000 {
            var bytes = Self.pssSHA256
            for _ in 0..<(1 + n % 4) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes[Int(state >> 33) % bytes.count] = UInt8(truncatingIfNeeded: state >> 17)
            }
            _ = IKESignatureScheme(algorithmIdentifier: Array(bytes.prefix(Int(state >> 40) % (bytes.count + 1))))
        }
    }

    @Test func chainsToTheConfiguredCAs() throws {
        let trust = try PKI.trust()
        #expect(trust.verify(try PKI.cert("gw1-rsa")) == nil)
        #expect(trust.verify(try PKI.cert("gw2-ec")) == nil)
        // Through an intermediate the peer sends (an untrusted CERT payload), not without it.
        #expect(trust.verify(try PKI.cert("gw3-p384"), intermediates: [try PKI.cert("inter")]) == nil)
        #expect(trust.verify(try PKI.cert("gw3-p384"))?.contains("local issuer") == true)
        // Another CA's certificate for the same name.
        #expect(trust.verify(try PKI.cert("rogue")) != nil)
        // A CA certificate sent by the peer is not a trust anchor.
        #expect(trust.verify(try PKI.cert("rogue"), intermediates: [try PKI.cert("rogue-ca")]) != nil)
        // Expired (checked at a time after the 100 years of the fixtures).
        #expect(trust.verify(try PKI.cert("gw2-ec"), time: 5_000_000_000)?.contains("expired") == true)
        // CERTREQ: the SHA-1 of the CA's SubjectPublicKeyInfo.
        #expect(trust.certificateRequest.count == 20)
    }

    @Test func aCRLOnFileRevokes() throws {
        #expect(try PKI.trust().verify(try PKI.cert("revoked")) == nil)
        let withCRL = try PKI.trust(crl: true)
        #expect(withCRL.crlCount == 1)
        #expect(withCRL.verify(try PKI.cert("revoked"))?.contains("revoked") == true)
        #expect(withCRL.verify(try PKI.cert("gw2-ec")) == nil)
        // A CA without a CRL on file is not refused for that (the intermediate has none).
        #expect(withCRL.verify(try PKI.cert("gw3-p384"), intermediates: [try PKI.cert("inter")]) == nil)
    }

    @Test func identitiesACertificateProves() throws {
        let gw1 = try PKI.cert("gw1-rsa")
        #expect(gw1.proves(type: IKEIDType.fqdn, data: Array("gw1.example.org".utf8)))
        #expect(gw1.proves(type: IKEIDType.fqdn, data: Array("GW1.Example.ORG".utf8)))
        #expect(!gw1.proves(type: IKEIDType.fqdn, data: Array("gw2.example.org".utf8)))
        // The subject's CN is not an FQDN it proves (RFC 4945 §3.2.3: subjectAltName).
        #expect(!gw1.proves(type: IKEIDType.fqdn, data: Array("gw1-rsa".utf8)))
        #expect(gw1.proves(type: IKEIDType.ipv4, data: [192, 0, 2, 1]))
        #expect(!gw1.proves(type: IKEIDType.ipv4, data: [192, 0, 2, 2]))
        #expect(gw1.proves(type: IKEIDType.rfc822, data: Array("gw1@example.org".utf8)))
        #expect(gw1.proves(type: IKEIDType.derDN, data: gw1.subjectDER))
        #expect(!gw1.proves(type: IKEIDType.derDN, data: try PKI.cert("gw2-ec").subjectDER))
        #expect(!gw1.proves(type: IKEIDType.derDN, data: gw1.subjectDER + [0]))
        #expect(!gw1.proves(type: IKEIDType.keyID, data: [1, 2, 3]))
        #expect(gw1.subject == "O=encd, CN=gw1-rsa")
        // A DN written either way is the certificate's subject.
        #expect(IKEIdentity("/O=encd/CN=gw1-rsa") == IKEIdentity(type: IKEIDType.derDN, data: gw1.subjectDER))
        #expect(IKEIdentity("O=encd, CN=gw1-rsa") == IKEIdentity(type: IKEIDType.derDN, data: gw1.subjectDER))
        #expect(IKEIdentity("O=encd, CN=gw1-rsa").description == "O=encd, CN=gw1-rsa")
    }

    /// Every method each fixture key can sign with verifies, and fails on other octets,
    /// with another key and with another method.
    @Test func everyAuthMethodSignsAndVerifies() throws {
        let octets = Array("the signed octets of §2.15".utf8), other = Array("other octets".utf8)
        let cases: [(String, UInt8?, [IKEHash], UInt8)] = [
            ("gw1-rsa", nil, [.sha256, .sha384, .sha512], 14), ("gw1-rsa", nil, [], 1), ("gw1-rsa", 1, [.sha256], 1),
            ("gw2-ec", nil, [.sha256], 14), ("gw2-ec", nil, [], 9), ("gw2-ec", 9, [.sha256], 9),
            ("gw3-p384", nil, [.sha384], 14), ("gw3-p384", nil, [.sha256], 10), ("gw3-p384", nil, [], 10), ("gw3-p384", 10, [], 10),
        ]
        for (name, method, hashes, expected) in cases {
            let key = try PKI.key(name), pub = try #require(try PKI.cert(name).publicKey)
            let auth = try IKESignatureAuth.sign(octets, key: key, method: method, peerHashes: hashes)
            #expect(auth.method == expected, "\(name) \(String(describing: method)) \(hashes)")
            #expect(IKESignatureAuth.verify(octets, key: pub, method: auth.method, data: auth.data) == nil, "\(name) method \(auth.method)")
            #expect(IKESignatureAuth.verify(other, key: pub, method: auth.method, data: auth.data) != nil)
            let stranger = try #require(try PKI.cert(name == "gw2-ec" ? "revoked" : "gw2-ec").publicKey)
            #expect(IKESignatureAuth.verify(octets, key: stranger, method: auth.method, data: auth.data) != nil)
        }
        // RFC 7427 with P-384 uses SHA-384 when the peer takes it.
        let p384 = try IKESignatureAuth.sign(octets, key: try PKI.key("gw3-p384"), method: nil, peerHashes: [.sha256, .sha384])
        #expect(Array(p384.data[1...Int(p384.data[0])]) == Self.ecdsaSHA384)
        // The wrong key type for a classic method is refused, signing and verifying.
        #expect(throws: IKECryptoError.self) { try IKESignatureAuth.sign(octets, key: try PKI.key("gw1-rsa"), method: 9, peerHashes: []) }
        let ec = try IKESignatureAuth.sign(octets, key: try PKI.key("gw2-ec"), method: 9, peerHashes: [])
        #expect(IKESignatureAuth.verify(octets, key: try #require(try PKI.cert("gw1-rsa").publicKey), method: 9, data: ec.data) != nil)
        #expect(IKESignatureAuth.verify(octets, key: try #require(try PKI.cert("gw3-p384").publicKey), method: 10, data: ec.data) != nil)
    }

    /// What charon sends with `rsa_pss = yes`: RFC 7427 with RSASSA-PSS.
    @Test func rsaPSSSignaturesVerify() throws {
        let octets = Array("octets".utf8)
        let key = try PKI.key("gw1-rsa"), pub = try #require(try PKI.cert("gw1-rsa").publicKey)
        for scheme in [IKESignatureScheme.rsaPSS(.sha256, salt: 32), .rsaPSS(.sha384, salt: 48), .rsaPSS(.sha512, salt: 20)] {
            let id = scheme.algorithmIdentifier
            let data = [UInt8(id.count)] + id + (try key.sign(octets, scheme))
            #expect(IKESignatureAuth.verify(octets, key: pub, method: 14, data: data) == nil, "\(scheme)")
            // The same signature under another salt length does not verify.
            let wrong = IKESignatureScheme.rsaPSS(scheme.hash, salt: 10).algorithmIdentifier
            #expect(IKESignatureAuth.verify(octets, key: pub, method: 14, data: [UInt8(wrong.count)] + wrong + data.dropFirst(1 + id.count)) != nil)
        }
        // SHA-1 in RFC 7427 is refused (RFC 8247 §3.2).
        let sha1 = IKESignatureScheme.rsaPKCS1(.sha1).algorithmIdentifier
        let data = [UInt8(sha1.count)] + sha1 + (try key.sign(octets, .rsaPKCS1(.sha1)))
        #expect(IKESignatureAuth.verify(octets, key: pub, method: 14, data: data)?.contains("SHA-1") == true)
        #expect(IKESignatureAuth.verify(octets, key: pub, method: 14, data: [200, 1, 2]) != nil)
        #expect(IKESignatureAuth.verify(octets, key: pub, method: 14, data: []) != nil)
    }

    @Test func credentialsFromADirectory() throws {
        let dir = try PKI.directory(key: "gw3-p384", certs: ["gw1-rsa", "gw3-p384", "inter"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try IKECredentials.load(directory: dir)
        #expect(c.trust.authorities.count == 1 && c.trust.crlCount == 1)
        #expect(c.key?.kind == .ecdsa(curve: "P-384"))
        // Only a certificate with our key, and only one that proves the asked identity.
        let mine = try #require(c.certificate(proving: nil))
        #expect(mine.subject == "O=encd, CN=gw3-p384")
        #expect(c.certificate(proving: (IKEIDType.fqdn, Array("gw3.example.org".utf8))) === mine)
        #expect(c.certificate(proving: (IKEIDType.fqdn, Array("gw1.example.org".utf8))) == nil)
        // The intermediate goes with it; the root does not.
        #expect(c.chain(for: mine).map(\.subject) == ["O=encd, CN=inter"])

        let open = try PKI.directory(key: "gw2-ec", certs: ["gw2-ec"], keyMode: 0o644)
        defer { try? FileManager.default.removeItem(atPath: open) }
        #expect { try IKECredentials.load(directory: open) } throws: { "\($0)".contains("local.key: group or others may read") }
        // An encrypted key is refused with how to fix it, never by asking a terminal.
        let encrypted = try PKI.directory(key: "gw2-ec", certs: ["gw2-ec"])
        defer { try? FileManager.default.removeItem(atPath: encrypted) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        let key = encrypted + "/private/local.key", enc = encrypted + "/private/enc.key"
        p.arguments = ["pkey", "-in", key, "-aes-128-cbc", "-passout", "pass:secret", "-out", enc]
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.moveItem(atPath: enc, toPath: key)
        chmod(key, 0o600)
        #expect { try IKECredentials.load(directory: encrypted) } throws: { "\($0)".contains("without a passphrase") }
    }
}

@Suite struct CertificateEngineTests {
    typealias E = EngineTests

    /// gw1 (RSA, gw1.example.org) initiates to gw2 (ECDSA P-256, gw2.example.org).
    static func pair(method1: UInt8? = nil, method2: UInt8? = nil, id1: String = "gw1.example.org", dstid2: String? = "gw1.example.org",
                     cert2: String = "gw2-ec", settings: IKEEngineSettings = IKEEngineSettings()) throws -> IKEWire {
        var p1 = IKEPolicy(name: "site2", active: true, local: IKEWire.a1, peer: IKEWire.a2, ikeProposals: [E.ike()], childProposals: [E.esp()],
                           localSelectors: [E.ts("198.18.1.0/24")], remoteSelectors: [E.ts("198.18.2.0/24")], authentication: .signature(method: method1))
        p1.localID = IKEIdentity(id1)
        p1.peerID = IKEIdentity("gw2.example.org")
        var p2 = IKEPolicy(name: "site1", active: false, local: IKEWire.a2, peer: nil, ikeProposals: [E.ike()], childProposals: [E.esp()],
                           localSelectors: [E.ts("198.18.2.0/24")], remoteSelectors: [E.ts("198.18.1.0/24")], authentication: .signature(method: method2))
        p2.localID = IKEIdentity("gw2.example.org")
        p2.peerID = dstid2.map(IKEIdentity.init)
        let w = IKEWire(p1, p2, settings1: settings, settings2: settings)
        w.gw1.credentials = try PKI.credentials("gw1-rsa")
        w.gw2.credentials = IKECredentials(trust: try PKI.trust(cas: ["ca", "rogue-ca"]), key: try PKI.key(cert2), certificates: [try PKI.cert(cert2)])
        return w
    }

    @Test func certificatesEstablishMirroredChildSAs() throws {
        var settings = IKEEngineSettings()
        settings.fragmentSize = 600
        let w = try Self.pair(settings: settings)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).count == 1 && E.established(w.gw2).count == 1, "\(w.logs.lines)")
        try E.expectMirrored(w)
        #expect(E.established(w.gw2).first?.peerCertificate == "O=encd, CN=gw1-rsa")
        #expect(E.established(w.gw1).first?.peerCertificate == "O=encd, CN=gw2-ec")
        // An RSA-2048 certificate, a signature and the rest: IKE_AUTH went in RFC 7383 fragments.
        #expect(w.seen.contains { d in
            let b = d.local.port == 4500 ? Array(d.bytes.dropFirst(4)) : d.bytes
            return b.count > 16 && b[16] == IKEPayloadType.skf
        })
    }

    @Test func classicMethodsAndADistinguishedNameID() throws {
        // rsa (method 1) and ecdsa256 (method 9), gw1 proving its subject DN.
        let w = try Self.pair(method1: 1, method2: 9, id1: "/O=encd/CN=gw1-rsa", dstid2: "O=encd, CN=gw1-rsa")
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).count == 1 && E.established(w.gw2).count == 1, "\(w.logs.lines)")
        #expect(E.established(w.gw2).first?.peerID == IKEIdentity(type: 9, data: try PKI.cert("gw1-rsa").subjectDER))
        #expect(w.logs.lines.filter { $0.contains("established") }.count == 2)
    }

    @Test func aPSKAgainstACertificatePolicyIsRefused() throws {
        // gw1 authenticates with a PSK; gw2's policy wants a certificate.
        let w = try Self.pair()
        var p1 = w.gw1.policies[0]
        p1.authentication = .psk(E.psk)
        w.gw1.replacePolicies([p1])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).isEmpty && E.established(w.gw2).isEmpty)
        #expect(w.be1.installed.isEmpty && w.be2.installed.isEmpty)
        #expect(w.logs.lines.contains { $0.contains("gw2: site1") && $0.contains("AUTH method 2, the policy wants a signature") })
    }

    @Test func anotherCAsCertificateIsRefused() throws {
        // gw2 holds a certificate for gw2.example.org from a CA gw1 does not trust.
        let w = try Self.pair(cert2: "rogue")
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).isEmpty)
        #expect(w.be1.installed.isEmpty)
        #expect(w.logs.lines.contains { $0.contains("responder failed to authenticate") && $0.contains("O=encd, CN=rogue") })
    }

    @Test func anIDTheCertificateDoesNotNameIsRefused() throws {
        // gw1 claims gw9.example.org with a certificate for gw1.example.org: it cannot
        // even start (no certificate of ours proves it).
        let w = try Self.pair(id1: "gw9.example.org", dstid2: nil)
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).isEmpty && E.established(w.gw2).isEmpty)
        #expect(w.logs.lines.contains { $0.contains("no certificate with our private key proves gw9.example.org") })
    }

    @Test func aRevokedCertificateIsRefused() throws {
        let w = try Self.pair(cert2: "revoked")
        w.gw2.credentials = IKECredentials(trust: try PKI.trust(), key: try PKI.key("revoked"), certificates: [try PKI.cert("revoked")])
        var p2 = w.gw2.policies[0]
        p2.localID = IKEIdentity("revoked.example.org")
        w.gw2.replacePolicies([p2])
        var p1 = w.gw1.policies[0]
        p1.peerID = nil
        w.gw1.replacePolicies([p1])
        w.gw1.credentials = IKECredentials(trust: try PKI.trust(crl: true), key: try PKI.key("gw1-rsa"), certificates: [try PKI.cert("gw1-rsa")])
        w.run(w.gw1.initiate("site2", from: w.local1, now: 0))
        #expect(E.established(w.gw1).isEmpty)
        #expect(w.logs.lines.contains { $0.contains("certificate revoked") })
    }
}
