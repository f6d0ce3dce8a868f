// Error reporting: every error of a file, each with file:line:column, nothing loaded
// when any error occurs, and no key material in any message.

import Testing
import IPsec
@testable import Config

@Suite struct ErrorTests {
    @Test func everyErrorOfAFileIsReportedInOrder() {
        let all = errors("""
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2
            bogus line here
            set no.such.tunable 1
            esp from 192.0.2.1 to 192.0.2.2 spi 7 authkey \(authK1) enckey \(encK1)
            """)
        #expect(all.map(\.description) == [
            "/etc/encd/ipsec.conf:1:34: no peer specified for destination 10.2.0.0/24",
            "/etc/encd/ipsec.conf:3:1: expected a rule (\"flow\", \"esp\", \"ah\", \"set\", \"include\") or a macro definition at start of line, found \"bogus\"",
            "/etc/encd/ipsec.conf:4:5: unknown tunable \"no.such.tunable\": expected one of " + Tunables.table.map(\.name).joined(separator: ", "),
            "/etc/encd/ipsec.conf:5:37: 7 within reserved spi range",
        ])
    }

    @Test func errorsThrowTheAggregateWithOneLinePerError() {
        do {
            _ = try parse("a b\nc d\n")
            Issue.record("parsed")
        } catch let e as ConfigErrors {
            #expect(e.errors.count == 2)
            #expect(e.description.split(separator: "\n").count == 2)
            #expect(e.first?.line == 1)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func errorMidLineSkipsOnlyThatLine() {
        let all = errors("""
            flow esp out from 10.1.0.0/24 to to 10.2.0.0/24 $undefined peer 192.0.2.2
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type nope
            """)
        #expect(all.map(\.line) == [1, 2])
        #expect(all[0].column == 34)
        #expect(all[0].message == "expected an address, \"any\" or \"{\" after \"to\", found \"to\"")
    }

    @Test func unexpectedEndOfLineIsNamed() {
        let e = error("flow esp out from 10.1.0.0/24\n")
        #expect(e?.message == "expected \"to\" after source address, found end of line")
        #expect(e?.column == 30)
        let f = error("flow esp out from 10.1.0.0/24")
        #expect(f?.message == "expected \"to\" after source address, found end of file")
    }

    @Test func columnsCountCharactersNotBytes() {
        let e = error("# é\nflow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 srcid \"é\" bad\n")
        #expect(e?.line == 2 && e?.column == 71)
    }

    @Test func misplacedKeyIsNotEchoed() {
        // The key lands where a clause keyword is expected: the message must not show it.
        let all = errors("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 auth hmac-sha2-256 \(authK1) enckey \(encK1)\n")
        #expect(all.count == 1)
        #expect(all[0].message.hasSuffix("found a hex string (not shown)"))
        let keyDigits = String(authK1.dropFirst(2))
        #expect(all.allSatisfy { !$0.description.contains(keyDigits) })
    }

    @Test func keysNeverAppearInErrorsOrDescriptions() throws {
        let texts = [
            "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1)\(authK2) enckey \(encK1)\n",
            "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1):\(encK2):\(encK1)\n",
            "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(encK1) enckey \(authK1)\n",
            "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 \(authK1) \(encK1)\n",
            "ah from 192.0.2.1 to 192.0.2.2 spi 0x1000 authkey \(authK1) enckey \(encK1)\n",
        ]
        let digits = [authK1, authK2, encK1, encK2].map { String($0.dropFirst(2).prefix(16)) }
        for t in texts {
            for e in errors(t) {
                #expect(digits.allSatisfy { !e.description.contains($0) }, "\(e)")
            }
        }
        let c = try parse("esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 authkey \(authK1):\(authK2) enckey \(encK1):\(encK2)\n")
        for text in [c.description, "\(c.sas[0])", String(describing: c.sas), Printer.sa(c.sas[0])] {
            #expect(digits.allSatisfy { !text.contains($0) }, "\(text)")
        }
    }

    @Test func unreadableFileNamesThePath() {
        do {
            _ = try ConfigParser.load(path: "/nonexistent/encd-test/ipsec.conf")
            Issue.record("loaded")
        } catch let e as ConfigErrors {
            #expect(e.description == "/nonexistent/encd-test/ipsec.conf: No such file or directory")
        } catch {
            Issue.record("\(error)")
        }
    }
}

@Suite struct RobustnessTests {
    /// Malformed input of every shape ends in errors, never a trap or a hang.
    @Test func garbageYieldsErrorsNotCrashes() {
        let inputs = ["{", "}", "$", "\\", "=", "flow {", "flow esp out from {", "flow esp out from { 10.1.0.0/24,",
                      "flow esp out from 10.1.0.0/ to any", "flow esp out from 10.1.0.0/+8 to any",
                      "esp from 192.0.2.1 to 192.0.2.2 spi", "esp from 192.0.2.1 to 192.0.2.2 spi 0x+10",
                      "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000: authkey", "include", "include \"\"",
                      "set", "set ipsec.replay_window", "a =", "é ü", "flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer é",
                      "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime", "\"unterminated", "x = \"$y\"\nflow $x"]
        for text in inputs {
            let all = errors(text)
            #expect(!all.isEmpty, "\(text)")
            #expect(all.allSatisfy { $0.line >= 1 && $0.column >= 1 }, "\(text): \(all)")
        }
    }
}
