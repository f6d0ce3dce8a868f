// The client side of `encctl -f`: the file is read and parsed here (includes, key
// files and -D macros resolved against the client's file system and working
// directory), then sent to encd as canonical text — Config.Printer's output with keys,
// one rule per line — so the daemon parses exactly what was checked here and never
// opens the operator's files itself.

import Config

public struct LoadedRules: Sendable {
    /// What to send in Request.config (keys included).
    public var canonical: String
    /// The name errors quote ("stdin" for -f -).
    public var name: String
    /// What -v prints: the parsed rules as ipsecctl -nv does, keys only with -k.
    public var listing: String
    /// Warnings, each "file:line:column: warning: message".
    public var warnings: [String]
}

/// The file had errors: each "file:line:column: message" (or "file: reason").
public struct RulesError: Error, Sendable {
    public var lines: [String]
}

public enum IpsecctlConfig {
    /// Reads and parses `path` ("-" = standard input).
    public static func load(_ path: String, defines: [String: String], showKeys: Bool) throws -> LoadedRules {
        let c: Configuration
        do {
            c = try ConfigParser.load(path: path, defines: defines)
        } catch let e as ConfigErrors {
            throw RulesError(lines: e.errors.map(\.description))
        }
        return LoadedRules(canonical: Printer.configuration(c, showKeys: true),
                           name: path == "-" ? "stdin" : path,
                           listing: Printer.configuration(c, showKeys: showKeys),
                           warnings: c.warnings.map { "\($0.location): warning: \($0.message)" })
    }

    /// Checks a `-T name=value` the way the daemon will, without a daemon (-n).
    public static func checkTunable(_ name: String, _ value: String) throws {
        var t = Tunables()
        do {
            try t.set(name, to: value)
        } catch let e as TunableError {
            throw RulesError(lines: [e.message])
        }
    }

    /// Tunable names in the documented order (Config.Tunables.table).
    public static var tunableNames: [String] { Tunables.table.map(\.name) }
}
