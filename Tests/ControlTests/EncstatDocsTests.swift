// The documentation keeps up with the code: every counter and every Prometheus family
// is in Docs/counters.md (with the HELP and TYPE lines encstat writes); the manual pages
// man/encstat.8 and man/encctl.8 (mdoc, the source of Docs/*.8.md) have the tools'
// usage lines as their SYNOPSIS and an entry for every flag.

import Control
import Foundation
import IPsec
import Testing

@Suite struct EncstatDocsTests {
    static func doc(_ name: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("Docs/\(name)"), encoding: .utf8)
    }

    @Test func everyCounterIsDocumented() throws {
        let text = try Self.doc("counters.md")
        for c in Counter.allCases {
            #expect(text.contains("| `\(c.name)` |"), "Docs/counters.md lacks \(c.name)")
        }
    }

    @Test func everyPrometheusFamilyIsDocumentedWithItsHelpAndType() throws {
        let text = try Self.doc("counters.md")
        var sa = EncstatFixtures.sas.sas!
        sa[0].softBytesLeft = 1
        sa[0].hardSecondsLeft = 1
        let x = PrometheusMetrics.exposition(counters: CounterSnapshot(), queues: EncstatFixtures.queues(dropped: 0), sas: sa)
        for f in x.families {
            let header = "# HELP \(f.name) \(PrometheusFamily.escapeHelp(f.help))\n# TYPE \(f.name) \(f.kind.rawValue)\n"
            #expect(text.contains(header), "Docs/counters.md lacks\n\(header)")
        }
    }

    @Test func everyEncstatFlagIsInTheManualPage() throws {
        let page = try ManPage("encstat.8")
        for flag in ["-s", "-ss", "-p", "-r", "-n", "-a", "-w", "-c", "-j", "-o", "-S"] {
            #expect(page.itemFlags.contains(flag), "man/encstat.8 has no .It for \(flag)")
        }
        #expect(page.synopsis == NetstatOptions.usage.replacingOccurrences(of: "usage: ", with: ""))
    }

    @Test func everyEncctlFlagIsInTheManualPage() throws {
        let page = try ManPage("encctl.8")
        for flag in ["-D", "-d", "-F", "-f", "-k", "-m", "-n", "-S", "-s", "-T", "-v"] {
            #expect(page.itemFlags.contains(flag), "man/encctl.8 has no .It for \(flag)")
        }
        #expect(page.synopsis == EncctlOptions.usage.replacingOccurrences(of: "usage: ", with: ""))
    }
}
