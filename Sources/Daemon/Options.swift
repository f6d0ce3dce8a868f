// encd's command line:
//   encd [-dnUv] [-D macro=value] [-f file] [-L statedir] [-R rundir] [-S socket] [-w workers]
// -S names the control socket, as encctl, encstat and encd-iked spell it (default
// rundir/encd.sock). Older spellings keep working with a warning: -s socket, and
// -S naming an existing directory (it used to be the state directory, now -L).
// -U removes what a stopped encd left in the kernel and exits.
// -w sets how many workers protect and how many unprotect (each SA belongs to one).

#if canImport(Glibc)
import Glibc
#endif

public struct Options: Sendable, Equatable {
    public var foreground = false
    public var verbose = 0
    public var checkOnly = false
    /// -U: remove the table, rules and routes a stopped encd left, then exit.
    public var unload = false
    public var file = "/etc/encd/ipsec.conf"
    public var defines: [String: String] = [:]
    public var stateDirectory = "/var/lib/encd"
    public var runDirectory = "/run/encd"
    /// The control socket; nil = runDirectory + "/encd.sock".
    public var socket: String?
    /// -w: workers for IPsec out and for IPsec in (raw ESP/AH) each; nil = one per CPU, at most `maxWorkers`.
    public var workers: Int?
    public static let maxWorkers = 16
    /// What the command line spelled the old way (printed as warnings).
    public var warnings: [String] = []

    /// Where the control socket is.
    public var socketPath: String { socket ?? runDirectory + "/encd.sock" }

    public init() {}

    public static let usage = "usage: encd [-dnUv] [-D macro=value] [-f file] [-L statedir] [-R rundir] [-S socket] [-w workers]"

    /// Parses argv (without the program name); throws a one-line message on bad input.
    /// `isDirectory` tells an old `-S statedir` from `-S socket` (tests replace it).
    public static func parse(_ args: [String], isDirectory: (String) -> Bool = Options.isDirectory) throws -> Options {
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
                case "U": o.unload = true
                case "f", "D", "S", "R", "s", "L", "w":
                    let v = flags.isEmpty ? try value("-\(f)") : String(flags)
                    flags = []
                    switch f {
                    case "f": o.file = v
                    case "w":
                        guard let n = Int(v), (1...maxWorkers).contains(n) else {
                            throw DaemonError("-w \(v): workers must be a number from 1 to \(maxWorkers)")
                        }
                        o.workers = n
                    case "L": o.stateDirectory = v
                    case "R": o.runDirectory = v
                    case "S" where isDirectory(v):
                        o.stateDirectory = v
                        o.warnings.append("-S \(v): a directory, taken as the state directory; that is -L now (-S names the control socket)")
                    case "S": o.socket = v
                    case "s":
                        o.socket = v
                        o.warnings.append("-s \(v): the control socket is -S now, as for encctl and encstat")
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
        if o.unload && o.checkOnly { throw DaemonError("-U and -n do not go together\n\(usage)") }
        return o
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }
}
