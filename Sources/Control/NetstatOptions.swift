// encstat's command line, netstat(1)'s letters where they apply:
//   encstat [-ajnrs] [-c count] [-o prometheus] [-p esp|ah|ipsec|enc] [-S socket] [-w wait]
// Flags combine as getopt allows ("-ss", "-sp esp", "-w1"). Without a selection
// (-s, -p, -r, -a, -w, -o) encstat prints every counter, as -s does.

import IPsec

public struct NetstatOptions: Sendable, Equatable {
    /// -s given this many times: 1 prints every counter, 2 or more hides zeros.
    public var statistics = 0
    /// -p: one group.
    public var group: CounterGroup?
    /// -r: flows.
    public var routes = false
    /// -a: SAs.
    public var sas = false
    /// -n: numeric (encd never resolves names; widens IPv6 columns and prints protocol numbers).
    public var numeric = false
    /// -w: seconds between lines; -c: number of lines.
    public var wait: Int?
    public var count: Int?
    /// -j: JSON.
    public var json = false
    /// -o prometheus.
    public var prometheus = false
    /// -S: the control socket.
    public var socket = ControlProtocol.defaultSocket

    public init() {}

    public static let usage = "usage: encstat [-ajnrs] [-c count] [-o prometheus] [-p esp|ah|ipsec|enc] [-S socket] [-w wait]"

    public var hideZeros: Bool { statistics >= 2 }
    /// Counters are printed with -s or -p, and when nothing else is selected.
    public var showsCounters: Bool { statistics > 0 || group != nil || (!routes && !sas) }
    public var groups: [CounterGroup] { group.map { [$0] } ?? NetstatCounters.allGroups }

    /// Parses argv without the program name; a bad command line throws one line plus usage.
    public static func parse(_ args: [String]) throws -> NetstatOptions {
        var o = NetstatOptions()
        var i = 0
        func fail(_ m: String) -> ControlError { ControlError("encstat: \(m)\n\(usage)") }
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("-"), a.count >= 2 else { throw fail("unexpected argument \"\(a)\"") }
            var letters = Substring(a.dropFirst())
            while let f = letters.first {
                letters = letters.dropFirst()
                switch f {
                case "s": o.statistics += 1
                case "r": o.routes = true
                case "a": o.sas = true
                case "n": o.numeric = true
                case "j": o.json = true
                case "p", "w", "c", "o", "S":
                    var v = String(letters)
                    letters = ""
                    if v.isEmpty {
                        i += 1
                        guard i < args.count else { throw fail("option -\(f) needs an argument") }
                        v = args[i]
                    }
                    switch f {
                    case "p":
                        guard let g = CounterGroup(rawValue: v) else {
                            throw fail("unknown protocol \"\(v)\" for -p (esp, ah, ipsec or enc)")
                        }
                        o.group = g
                    case "w":
                        guard let n = Int(v), n > 0 else { throw fail("-w needs a whole number of seconds above 0, not \"\(v)\"") }
                        o.wait = n
                    case "c":
                        guard let n = Int(v), n > 0 else { throw fail("-c needs a count above 0, not \"\(v)\"") }
                        o.count = n
                    case "o":
                        guard v == "prometheus" else { throw fail("unknown output format \"\(v)\" for -o (prometheus)") }
                        o.prometheus = true
                    default:
                        guard !v.isEmpty else { throw fail("-S needs a socket path") }
                        o.socket = v
                    }
                default:
                    throw fail("unknown option -\(f)")
                }
            }
            i += 1
        }
        if o.count != nil && o.wait == nil { throw fail("-c needs -w") }
        if o.wait != nil && (o.routes || o.sas) { throw fail("-w prints counters only; it does not combine with -r or -a") }
        if o.prometheus {
            if o.json { throw fail("-j and -o prometheus are two output formats; choose one") }
            if o.wait != nil || o.routes || o.sas || o.statistics > 0 || o.group != nil {
                throw fail("-o prometheus writes every metric and takes no -s, -p, -r, -a or -w")
            }
        }
        return o
    }
}
