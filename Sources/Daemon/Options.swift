// encd's command line: encd [-dnv] [-D macro=value] [-f file] [-R rundir] [-S statedir] [-s socket]
// (-s names the control socket, as iked(8) and ospfd(8) do; default rundir/encd.sock).

public struct Options: Sendable, Equatable {
    public var foreground = false
    public var verbose = 0
    public var checkOnly = false
    public var file = "/etc/encd/ipsec.conf"
    public var defines: [String: String] = [:]
    public var stateDirectory = "/var/lib/encd"
    public var runDirectory = "/run/encd"
    /// The control socket; nil = runDirectory + "/encd.sock".
    public var socket: String?

    /// Where the control socket is.
    public var socketPath: String { socket ?? runDirectory + "/encd.sock" }

    public init() {}

    public static let usage = "usage: encd [-dnv] [-D macro=value] [-f file] [-R rundir] [-S statedir] [-s socket]"

    /// Parses argv (without the program name); throws a one-line message on bad input.
    public static func parse(_ args: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < args.count else { throw DaemonError("option \(flag) needs an argument\n\(usage)") }
            return args[i]
        }
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("-"), a.count >= 2 else { throw DaemonError("unexpected argument \"\(a)\"\n\(usage)") }
            var flags = Array(a.dropFirst())
            while !flags.isEmpty {
                let f = flags.removeFirst()
                switch f {
                case "d": o.foreground = true
                case "v": o.verbose += 1
                case "n": o.checkOnly = true
                case "f", "D", "S", "R", "s":
                    let v = flags.isEmpty ? try value("-\(f)") : String(flags)
                    flags = []
                    switch f {
                    case "f": o.file = v
                    case "S": o.stateDirectory = v
                    case "R": o.runDirectory = v
                    case "s": o.socket = v
                    default:
                        guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
                            throw DaemonError("-D needs macro=value, found \"\(v)\"")
                        }
                        o.defines[String(v[..<eq])] = String(v[v.index(after: eq)...])
                    }
                default:
                    throw DaemonError("unknown option -\(f)\n\(usage)")
                }
            }
            i += 1
        }
        return o
    }
}
