// encctl's command line, parsed as ipsecctl(8) parses its own (getopt "D:dFf:kmnS:s:T:v"):
// flags may be grouped (-nvf file), an option's argument may be attached (-ffile, -sa),
// "--" ends the options, and the first argument that is not an option is refused
// ("unknown command line argument"). -s takes any prefix of flow, sa or all; the first
// table entry that the argument is a prefix of wins, as ipsecctl_lookup_option does.
// A -D without "=" or with a bad name is warned about and ignored, as ipsecctl does.
// encd's additions: -S socket, -T name[=value].

import Config

/// What `-s` asks for.
public enum ShowTarget: String, Sendable, CaseIterable {
    case flow, sa, all

    /// ipsecctl_lookup_option: the first of flow, sa, all that `argument` is a
    /// non-empty prefix of; nil when there is none.
    public static func lookup(_ argument: String) -> ShowTarget? {
        guard !argument.isEmpty else { return nil }
        return allCases.first { $0.rawValue.hasPrefix(argument) }
    }
}

/// A tunable to read (`value` nil) or set, from `-T name[=value]`.
public struct TunableArgument: Sendable, Equatable {
    public var name: String
    public var value: String?
    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }
}

public struct EncctlOptions: Sendable, Equatable {
    /// -f: the file to load, delete or check; "-" is standard input.
    public var file: String?
    /// -n: parse only; nothing is sent to encd for -f and -F.
    public var noAction = false
    /// -d: delete what the file names instead of adding it.
    public var delete = false
    /// -F: flush all flows and SAs.
    public var flush = false
    /// -D macro=value, later ones win.
    public var defines: [String: String] = [:]
    /// -v count.
    public var verbose = 0
    /// -k: show keys.
    public var showKeys = false
    /// -s modifier.
    public var show: ShowTarget?
    /// -m: print events until interrupted.
    public var monitor = false
    /// -S: encd's control socket.
    public var socket = ControlProtocol.defaultSocket
    /// -T, in command-line order.
    public var tunables: [TunableArgument] = []
    /// Things to warn about that do not stop the run (ipsecctl warns about a bad -D).
    public var warnings: [String] = []

    public init() {}

    public static let usage =
        "usage: encctl [-dFkmnv] [-D macro=value] [-f file] [-S socket] [-s modifier] [-T name[=value]]"

    /// Parses the arguments after the program name.
    /// - Throws: `EncctlUsageError` with the message to print before the usage line.
    public static func parse(_ arguments: [String]) throws -> EncctlOptions {
        // ipsecctl: "if (argc < 2) usage();"
        guard !arguments.isEmpty else { throw EncctlUsageError(nil) }
        var o = EncctlOptions()
        var i = 0
        parsing: while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" { i += 1; break }
            guard arg.hasPrefix("-"), arg.count > 1 else { break }
            var letters = Array(arg.dropFirst())
            while !letters.isEmpty {
                let letter = letters.removeFirst()
                switch letter {
                case "d": o.delete = true
                case "F": o.flush = true
                case "k": o.showKeys = true
                case "m": o.monitor = true
                case "n": o.noAction = true
                case "v": o.verbose += 1
                case "D", "f", "S", "s", "T":
                    let value: String
                    if !letters.isEmpty {
                        value = String(letters)
                        letters = []
                    } else {
                        i += 1
                        guard i < arguments.count else {
                            throw EncctlUsageError("option requires an argument -- \(letter)")
                        }
                        value = arguments[i]
                    }
                    try o.apply(letter, value)
                default:
                    throw EncctlUsageError("unknown option -- \(letter)")
                }
            }
            i += 1
            continue parsing
        }
        if i < arguments.count {
            throw EncctlUsageError("unknown command line argument: \(arguments[i]) ...")
        }
        return o
    }

    private mutating func apply(_ letter: Character, _ value: String) throws {
        switch letter {
        case "D":
            if let d = ConfigParser.parseDefine(value) {
                defines[d.name] = d.value
            } else {
                warnings.append("could not parse macro definition \(value)")
            }
        case "f": file = value
        case "S": socket = value
        case "s":
            guard let t = ShowTarget.lookup(value) else {
                throw EncctlUsageError("Unknown show modifier '\(value)'")
            }
            show = t
        default:
            if let eq = value.firstIndex(of: "=") {
                tunables.append(TunableArgument(name: String(value[..<eq]),
                                                value: String(value[value.index(after: eq)...])))
            } else {
                tunables.append(TunableArgument(name: value, value: nil))
            }
        }
    }
}

/// A command line encctl refuses: `message` (if any) then the usage line, exit 64.
public struct EncctlUsageError: Error, Equatable, CustomStringConvertible {
    public var message: String?
    public init(_ message: String?) { self.message = message }
    public var description: String {
        guard let m = message else { return EncctlOptions.usage }
        return "encctl: \(m)\n" + EncctlOptions.usage
    }
}
