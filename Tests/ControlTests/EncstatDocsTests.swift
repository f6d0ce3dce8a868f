// The documentation keeps up with the code: every counter and every Prometheus family
// is in Docs/counters.md (with the HELP and TYPE lines encstat writes), every flag in
// Docs/encstat.8.md.

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

    @Test func everyFlagIsInTheManualPage() throws {
        let text = try Self.doc("encstat.8.md")
        for flag in ["-s", "-ss", "-p", "-r", "-n", "-a", "-w", "-c", "-j", "-o", "-S"] {
            #expect(text.contains("**\(flag)**"), "Docs/encstat.8.md lacks \(flag)")
        }
        #expect(text.contains(NetstatOptions.usage.replacingOccurrences(of: "usage: ", with: "")))
    }
}
