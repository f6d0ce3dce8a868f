// `encctl -s` output, as ipsecctl(8)'s ipsecctl_show prints it:
//   -s flow   one line per flow, in the daemon's SPD order;
//   -s sa     one rule per SA, sorted by SPI (ipsecctl qsorts the SAD dump by SPI);
//   -s all    "FLOWS:" then the flows or "No flows", a blank line, "SAD:" then the SAs
//             or "No entries" (ipsecctl_print_title puts the blank line before every
//             title but the first).
// A flow or SA line is the daemon's `text` (ipsecctl's format, see Config.Printer).
// Keys: the daemon puts keys into an SA's text only when asked (-k); encctl cuts
// anything after the first continuation (" \" newline) when -k was not given, so no key
// reaches the output without -k even from a daemon that sent one.
// -v adds detail lines under each SA (IpsecctlDetails); flows have none.

public struct ShowStyle: Sendable, Equatable {
    public var verbose: Int
    public var showKeys: Bool
    public init(verbose: Int = 0, showKeys: Bool = false) {
        self.verbose = verbose
        self.showKeys = showKeys
    }
}

public enum IpsecctlFormat {
    /// The whole output of `-s target`, each line ending in a newline (may be empty).
    public static func show(_ target: ShowTarget, flows: [FlowStatus], sas: [SAStatus],
                            style: ShowStyle = ShowStyle()) -> String {
        switch target {
        case .flow:
            return flowLines(flows)
        case .sa:
            return saLines(sas, style: style)
        case .all:
            var s = "FLOWS:\n"
            s += flows.isEmpty ? "No flows\n" : flowLines(flows)
            s += "\nSAD:\n"
            s += sas.isEmpty ? "No entries\n" : saLines(sas, style: style)
            return s
        }
    }

    public static func flowLines(_ flows: [FlowStatus]) -> String {
        flows.map { firstLine($0.text) + "\n" }.joined()
    }

    /// SAs sorted by SPI (stable: equal SPIs keep the daemon's order).
    public static func saLines(_ sas: [SAStatus], style: ShowStyle) -> String {
        let sorted = sas.enumerated().sorted { ($0.element.spi, $0.offset) < ($1.element.spi, $1.offset) }
        return sorted.map { sa($0.element, style: style) }.joined()
    }

    /// One SA: its rule (with keys only when `style.showKeys`), then with -v its details.
    public static func sa(_ sa: SAStatus, style: ShowStyle) -> String {
        var s = (style.showKeys ? sa.text : withoutKeys(sa.text)) + "\n"
        if style.verbose > 0 { s += IpsecctlDetails.lines(sa, showZeroCounters: style.verbose > 1) }
        return s
    }

    /// The rule without its key continuation lines.
    public static func withoutKeys(_ text: String) -> String {
        guard let r = text.range(of: " \\\n") else { return firstLine(text) }
        return firstLine(String(text[..<r.lowerBound]))
    }

    private static func firstLine(_ text: String) -> String {
        guard let nl = text.firstIndex(of: "\n") else { return text }
        return String(text[..<nl])
    }
}
