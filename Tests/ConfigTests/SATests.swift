// SA rules: spi pairs, defaults, algorithms and key sizes, key files, encd extensions.

import Testing
import Crypto
import EncCore
import IPsec
@testable import Config

@Suite struct SATests {
    @Test func spiPairYieldsBothDirectionsWithTheirKeys() throws {
        let c = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 authkey \(authK1):\(authK2) enckey \(encK1):\(encK2)\n")
        #expect(c.sas.count == 2)
        let ab = c.sas[0], ba = c.sas[1]
        #expect(ab.source == ip("192.0.2.1") && ab.destination == ip("192.0.2.2") && ab.spi == 0x1000)
        #expect(ba.source == ip("192.0.2.2") && ba.destination == ip("192.0.2.1") && ba.spi == 0x1001)
        #expect(ab.integrityKey == SecretKey(hex: authK1) && ba.integrityKey == SecretKey(hex: authK2))
        #expect(ab.encryptionKey == SecretKey(hex: encK1) && ba.encryptionKey == SecretKey(hex: encK2))
    }

    @Test func espDefaultsAreTunnelAESAndHMACSHA256() throws {
        let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)\n").sas[0]
        #expect(sa.proto == .esp && sa.mode == .tunnel)
        #expect(sa.encryption?.name == "aes" && sa.integrity?.name == "hmac-sha2-256")
        #expect(sa.replayWindow == 64 && !sa.extendedSequence && sa.encapsulation == nil)   // ipsec.replay_window
        #expect(sa.softLifetime.isUnlimited && sa.hardLifetime.isUnlimited)
    }

    @Test func satypeAndModeMayBeOmitted() throws {
        let c = try parse("""
            from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)
            transport from 192.0.2.1 to 192.0.2.3 spi 0x1000 authkey \(authK1) enckey \(encK1)
            """)
        #expect(c.sas[0].proto == .esp && c.sas[0].mode == .tunnel)
        #expect(c.sas[1].mode == .transport)
    }

    @Test func ahTakesOnlyAuth() throws {
        let sa = try parse("ah transport from 192.0.2.1 to 192.0.2.2 spi 4096 auth hmac-sha1 authkey 0x\(String(repeating: "ab", count: 20))\n").sas[0]
        #expect(sa.proto == .ah && sa.mode == .transport && sa.spi == 4096)
        #expect(sa.encryption == nil && sa.encryptionKey == nil && sa.integrity?.name == "hmac-sha1")
        #expect(error("ah from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes authkey \(authK1)\n")?.message == "ah does not provide encryption")
        #expect(error("ah from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)\n")?.message
                == "ah does not provide encryption: it takes no enckey")
    }

    @Test func combinedCiphersRefuseAuthAndTakeKeyPlusSalt() throws {
        let key = "0x" + String(repeating: "11", count: 20)  // 128-bit key + 32-bit salt
        let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes-128-gcm enckey \(key)\n").sas[0]
        #expect(sa.encryption?.name == "aes-128-gcm" && sa.integrity == nil && sa.integrityKey == nil)
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 auth hmac-sha1 enc chacha20-poly1305 enckey \(key)\n")
        #expect(e?.message == "authentication is implicit for chacha20-poly1305")
        #expect(e?.column == 49)
        let k = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes-128-gcm enckey \(encK1)\n")
        #expect(k?.message == "enckey for aes-128-gcm must be 160 bits (128-bit key + 32-bit salt), got 128 bits")
    }

    @Test func keySizeErrorsNameAlgorithmAndSizes() {
        let a = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(encK1) enckey \(encK1)\n")
        #expect(a?.message == "authkey for hmac-sha2-256 must be 256 bits, got 128 bits")
        #expect(a?.column == 52)
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey 0x\(String(repeating: "aa", count: 20))\n")
        #expect(e?.message == "enckey for aes must be 128, 192 or 256 bits, got 160 bits")
        let b = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc blowfish authkey \(authK1) enckey 0x\(String(repeating: "aa", count: 60))\n")
        #expect(b?.message == "enckey for blowfish must be 40 to 448 bits in steps of 8, got 480 bits")
        let c = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aesctr authkey \(authK1) enckey \(encK1)\n")
        #expect(c?.message == "enckey for aesctr must be 160, 224 or 288 bits (key + 32-bit nonce), got 128 bits")
    }

    @Test func everyAlgorithmAcceptsItsKeySize() throws {
        for enc in EncryptionAlgorithm.table where enc.cipher != .null {
            let bytes = (enc.keyBits.lowerBound + enc.cipher.saltBits) / 8
            let auth = enc.cipher.isCombined ? "" : " authkey \(authK1)"
            let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc \(enc.name)\(auth) enckey 0x\(String(repeating: "5a", count: bytes))\n").sas[0]
            #expect(sa.encryption == enc && sa.encryptionKey?.count == bytes)
        }
        for alg in IntegrityAlgorithm.table {
            let sa = try parse("ah from 192.0.2.1 to 192.0.2.2 spi 0x1000 auth \(alg.name) authkey 0x\(String(repeating: "5a", count: alg.keyBits / 8))\n").sas[0]
            #expect(sa.integrity == alg)
        }
    }

    @Test func nullEncryptionTakesNoKey() throws {
        let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc null authkey \(authK1)\n").sas[0]
        #expect(sa.encryption?.name == "null" && sa.encryptionKey == nil)
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc null authkey \(authK1) enckey \(encK1)\n")?.message
                == "enc null takes no enckey")
    }

    @Test func missingKeysAreErrorsAtRuleStart() {
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1)\n")
        #expect(e?.message == "no encryption key specified" && e?.column == 1)
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enckey \(encK1)\n")?.message == "no authentication key specified")
    }

    @Test func unknownAlgorithmListsTheValidOnes() {
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc rc4-cbc authkey \(authK1) enckey \(encK1)\n")
        #expect(e?.message.hasPrefix("rc4-cbc not a valid transform: enc takes null, aes, aes-128,") == true)
        #expect(e?.column == 48)
    }

    @Test func reservedAndInvalidSPIs() {
        let r = error("esp from 192.0.2.1 to 192.0.2.2 spi 0xff authkey \(authK1) enckey \(encK1)\n")
        #expect(r?.message == "255 within reserved spi range")
        #expect(r?.column == 37)
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:1 authkey \(authK1):\(authK2) enckey \(encK1):\(encK2)\n")?.message
                == "1 within reserved spi range")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x100000000 authkey \(authK1) enckey \(encK1)\n")?.message
                == "4294967296 not a valid spi")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0xzz authkey \(authK1) enckey \(encK1)\n")?.message
                == "invalid spi \"0xzz\": expected a number such as 0x1000, or OUT:IN")
    }

    @Test func keyCountMustMatchSPICount() {
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 authkey \(authK1):\(authK2) enckey \(encK1)\n")?.message
                == "spi OUT:IN names two SAs: enckey needs two keys (OUT:IN)")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1):\(authK2) enckey \(encK1)\n")?.message
                == "authkey gives two keys (OUT:IN) but spi names one SA: use spi OUT:IN")
    }

    @Test func nonHexKeyIsRefusedWithoutEchoingIt() {
        let secret = "0x" + String(repeating: "a1", count: 31) + "zz"
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(secret) enckey \(encK1)\n")
        #expect(e?.message == "authkey: keys need to be specified in hex digits")
        #expect(e.map { !$0.description.contains("a1a1a1") } == true)
    }

    @Test func keyFilesAreReadRelativeToTheConfiguration() throws {
        let files = ["/etc/encd/keys/a": String(repeating: "a1", count: 32) + "\n",
                     "/etc/encd/keys/b": "0x" + String(repeating: "b2", count: 32),
                     "/etc/encd/keys/e1": String(repeating: "c3", count: 16),
                     "/etc/encd/keys/e2": String(repeating: "d4", count: 16)]
        let c = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 authkey file \"keys/a:keys/b\" enckey file \"keys/e1:/etc/encd/keys/e2\"\n",
                          files: files)
        #expect(c.sas[0].integrityKey == SecretKey(hex: authK1) && c.sas[1].integrityKey == SecretKey(hex: authK2))
        #expect(c.sas[0].encryptionKey == SecretKey(hex: encK1) && c.sas[1].encryptionKey == SecretKey(hex: encK2))
    }

    @Test func missingKeyFileIsReportedAtItsName() {
        let e = error("esp from 192.0.2.1 to 192.0.2.2 \\\n  spi 0x1000 authkey file \"nokey\" enckey \(encK1)\n")
        #expect(e?.message == "cannot read key file /etc/encd/nokey: No such file or directory")
        #expect(e?.line == 2 && e?.column == 27)
    }

    @Test func udpencapWithAndWithoutPort() throws {
        let c = try parse("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 udpencap authkey \(authK1) enckey \(encK1)
            esp from 192.0.2.1 to 192.0.2.3 spi 0x1000 udpencap port 4501 peerport 31000 authkey \(authK1) enckey \(encK1)
            """)
        #expect(c.sas[0].encapsulation == UDPEncapsulation(port: 4500))
        #expect(c.sas[1].encapsulation == UDPEncapsulation(port: 4501, peerPort: 31000))
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 peerport 4500 authkey \(authK1) enckey \(encK1)\n")?.message
                == "peerport needs udpencap")
    }

    @Test func udpencapPortFollowsTunableSetLaterInTheFile() throws {
        let c = try parse("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 udpencap authkey \(authK1) enckey \(encK1)
            set net.inet.esp.udpencap_port 4600
            """)
        #expect(c.sas[0].encapsulation?.port == 4600)
    }

    @Test func replayWindowExplicitOrFromTunable() throws {
        let c = try parse("""
            set ipsec.replay_window 128
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)
            esp from 192.0.2.1 to 192.0.2.3 spi 0x1000 replay 1024 authkey \(authK1) enckey \(encK1)
            esp from 192.0.2.1 to 192.0.2.4 spi 0x1000 replay 0 authkey \(authK1) enckey \(encK1)
            """)
        #expect(c.sas.map(\.replayWindow) == [128, 1024, 0])
        let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 replay 100 authkey \(authK1) enckey \(encK1)\n")
        #expect(e?.message == "replay window must be 0 or a multiple of 64 from 64 to 4096 packets, found \"100\"")
        #expect(e?.column == 51)
    }

    @Test func esnAndLifetimes() throws {
        let sa = try parse("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 esn lifetime soft bytes 1G seconds 3000 \\
                lifetime hard bytes 2G packets 1000000 seconds 3600 firstuse 600 authkey \(authK1) enckey \(encK1)
            """).sas[0]
        #expect(sa.extendedSequence)
        #expect(sa.softLifetime == Lifetime(bytes: 1 << 30, seconds: 3000))
        #expect(sa.hardLifetime == Lifetime(bytes: 2 << 30, packets: 1_000_000, seconds: 3600, secondsSinceUse: 600))
    }

    @Test func lifetimeErrors() {
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime soft seconds 7200 lifetime hard seconds 3600 authkey \(authK1) enckey \(encK1)\n")?.message
                == "soft lifetime seconds (7200) must not exceed hard lifetime seconds (3600)")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime soft authkey \(authK1) enckey \(encK1)\n")?.message
                == "expected \"bytes\", \"packets\", \"seconds\" or \"firstuse\" after \"lifetime soft\", found \"authkey\"")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime hard bytes 2X authkey \(authK1) enckey \(encK1)\n")?.message
                == "invalid bytes \"2X\": expected a number of at least 1, optionally with K, M or G")
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime hard seconds 1 lifetime hard seconds 2 authkey \(authK1) enckey \(encK1)\n")?.message
                == "hard lifetime already set")
    }

    @Test func saEndpointsMustBeHosts() {
        #expect(error("esp from 10.0.0.0/24 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)\n")?.message
                == "SA source must be a single address, found 10.0.0.0/24")
        #expect(error("esp from 192.0.2.1 to any spi 0x1000 authkey \(authK1) enckey \(encK1)\n")?.message
                == "SA destination must be a single address, found a list or any")
        #expect(error("esp from 192.0.2.1 to 2001:db8::1 spi 0x1000 authkey \(authK1) enckey \(encK1)\n")?.message
                == "source/destination address families do not match")
    }

    @Test func duplicateSAIsReportedWithFirstLocation() {
        let e = error("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)
            esp from 192.0.2.9 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)
            """)
        #expect(e?.description == "/etc/encd/ipsec.conf:2:1: duplicate SA esp spi 0x00001000 to 192.0.2.2: first defined at /etc/encd/ipsec.conf:1:1")
    }

    @Test func clausesMayComeInAnyOrderButOnce() throws {
        let sa = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enckey \(encK1) enc aes-128 authkey \(authK1) esn udpencap\n").sas[0]
        #expect(sa.encryption?.name == "aes-128" && sa.extendedSequence && sa.encapsulation != nil)
        #expect(error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes enc aes authkey \(authK1) enckey \(encK1)\n")?.message == "enc already set")
    }
}
