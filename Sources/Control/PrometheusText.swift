// Prometheus text exposition format 0.0.4 (what node_exporter's textfile collector
// reads): per family a "# HELP name text" and a "# TYPE name counter|gauge" line, then
// its samples "name{label="value",...} value". HELP text escapes "\" and newline;
// label values escape "\", '"' and newline. Families print in the order added,
// each name once.

import Foundation

public struct PrometheusFamily: Sendable, Equatable {
    public enum Kind: String, Sendable { case counter, gauge }
    public var name: String
    public var help: String
    public var kind: Kind
    public var samples: [(labels: [(String, String)], value: UInt64)]

    public init(_ name: String, _ kind: Kind, help: String) {
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = []
    }

    public mutating func add(_ value: UInt64, _ labels: [(String, String)] = []) {
        samples.append((labels, value))
    }

    public static func == (a: PrometheusFamily, b: PrometheusFamily) -> Bool {
        a.name == b.name && a.help == b.help && a.kind == b.kind && a.text == b.text
    }

    /// The family's lines, each ending in a newline.
    public var text: String {
        var out = "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
        for s in samples {
            out += name
            if !s.labels.isEmpty {
                out += "{" + s.labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
            }
            out += " \(s.value)\n"
        }
        return out
    }

    public static func escapeHelp(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    public static func escapeLabel(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
         .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// [a-zA-Z_:][a-zA-Z0-9_:]*
    public static func isValidName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        func ok(_ c: Unicode.Scalar, digits: Bool) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" || (digits && c >= "0" && c <= "9")
        }
        return ok(first, digits: false) && s.unicodeScalars.allSatisfy { ok($0, digits: true) }
    }
}

public struct PrometheusExposition: Sendable {
    public private(set) var families: [PrometheusFamily] = []

    public init() {}

    /// Adds a family, or the samples to the family of that name already added.
    public mutating func add(_ family: PrometheusFamily) {
        if let i = families.firstIndex(where: { $0.name == family.name }) {
            families[i].samples += family.samples
        } else {
            families.append(family)
        }
    }

    public var text: String { families.map(\.text).joined() }
}
