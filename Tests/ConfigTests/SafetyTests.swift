import Testing
@testable import Config

/// Refusals that protect the keys, beyond OpenBSD's grammar checks.
@Suite struct SafetyTests {
    @Test func counterModeCipherRefusesOneKeyForBothDirections() {
        let key = "0x" + String(repeating: "c3", count: 20)
        let text = "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(key):\(key)\n"
        let e = error(text)
        #expect(e?.message.contains("must differ between the two directions") == true)
        #expect(e?.line == 1 && e?.column == 74, "\(String(describing: e?.column))")
        #expect(e.map { !$0.description.contains("c3c3") } ?? false)
    }

    @Test func cbcMayShareTheKey() throws {
        let text = "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128 authkey \(authK1):\(authK1) enckey \(encK1):\(encK1)\n"
        #expect(try parse(text).sas.count == 2)
    }

    @Test func ahRefusesUDPEncapsulation() {
        let e = error("ah from 192.0.2.1 to 192.0.2.2 spi 0x1000 udpencap authkey \(authK1)\n")
        #expect(e?.message.contains("ah cannot be UDP-encapsulated") == true)
        #expect(e?.line == 1 && e?.column == 1)
    }
}

@Suite struct RefusedAlgorithmTests {
    @Test func desIsRefusedByName() {
        for name in ["des", "des-cbc", "DES-CBC"] {
            let e = error("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc \(name) authkey \(authK1) enckey 0x0123456789abcdef\n")
            #expect(e?.message == "DES is insecure and not supported (RFC 8221): use aes-128-gcm, aes or another enc")
            #expect(e?.line == 1 && e?.column == 48)
        }
    }

    @Test func oneCounterModeKeyOnTwoSAStatementsIsRefused() {
        let key = "0x" + String(repeating: "c3", count: 20)
        let e = error("""
            esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes-128-gcm enckey \(key)
            esp from 192.0.2.2 to 192.0.2.1 spi 0x2000 enc aes-128-gcm enckey \(key)

            """)
        #expect(e?.line == 2 && e?.column == 1)
        #expect(e?.message.contains("is already the key of esp spi 0x00001000 to 192.0.2.2") == true)
        #expect(e.map { !$0.description.contains("c3c3") } ?? false)
    }
}
