// Reads encd's manual pages (man/, mdoc) for the tests that keep them in step with the
// code: the SYNOPSIS rendered as the usage line prints it, and the flags listed with
// `.It Fl x`. Knows only the few mdoc macros those two parts use.

import Foundation

struct ManPage {
    let lines: [String]

    /// The page man/<name> of this checkout.
    init(_ name: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("man/\(name)"), encoding: .utf8)
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// The lines of section `name` (after its `.Sh`, up to the next `.Sh`).
    func section(_ name: String) -> [String] {
        guard let start = lines.firstIndex(of: ".Sh \(name)") else { return [] }
        let rest = lines[(start + 1)...]
        return Array(rest.prefix { !$0.hasPrefix(".Sh ") })
    }

    /// The SYNOPSIS as text, the way a usage line spells it:
    /// `.Op Fl c Ar count` -> "[-c count]", `Ns` joins words, `Cm`/`Ar` are plain.
    var synopsis: String {
        var words: [String] = []
        for line in section("SYNOPSIS") where line.hasPrefix(".") {
            var tokens = line.dropFirst().split(separator: " ").map(String.init)
            guard !tokens.isEmpty else { continue }
            var closers = 0
            var out = ""
            var join = true   // no blank before the next word
            while !tokens.isEmpty {
                let t = tokens.removeFirst()
                switch t {
                case "Nm", "Ar", "Cm": continue
                case "Op": out += (join ? "" : " ") + "["; join = true; closers += 1
                case "Fl": out += (join ? "" : " ") + "-"; join = true
                case "Ns": join = true
                default: out += (join ? "" : " ") + t; join = false
                }
            }
            words.append(out + String(repeating: "]", count: closers))
        }
        return words.joined(separator: " ")
    }

    /// The flags the page lists as items (`.It Fl s` -> "-s"), in page order.
    var itemFlags: [String] {
        lines.compactMap { line in
            guard line.hasPrefix(".It Fl ") else { return nil }
            return "-" + line.dropFirst(".It Fl ".count).split(separator: " ")[0]
        }
    }
}
