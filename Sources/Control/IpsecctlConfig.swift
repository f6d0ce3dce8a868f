// The client side of `encctl -f`: the file is read and parsed here (includes, key
// files and -D macros resolved against the client's file system and working
// directory), then sent to encd as canonical text — Config.Printer's output with keys,
// one rule per line — so the daemon parses exactly what was checked here and never
// opens the operator's files itself.
//
// Defaults an SA leaves to the tunables (the replay window, the NAT-T port) are the
// running daemon's, as ipsecctl's SAs get the kernel's sysctls: the file is parsed once
// with the built-in defaults (errors are reported without asking encd; -n stops there)
// and, before sending, again with the daemon's tunables.

import Config

/// The text of a rules file, read once (standard input cannot be read twice).
public struct RulesSource: Sendable {
    public var text: String
    /// The name errors quote ("stdin" for -f -).
    public var name: String
    /// Where relative include and key file names are looked up.
    public var directory: String?
}

public struct LoadedRules: Sendable {
    /// What to send in Request.config (keys included).
    public var canonical: String
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
    /// Reads `path` ("-" = standard input, with relative names looked up in the
    /// working directory, as ConfigParser.load does).
    public static func read(_ path: String) throws -> RulesSource {
        let name = path == "-" ? "stdin" : path
        do {
            return RulesSource(text: try ConfigParser.readFromDisk(path), name: name, directory: path == "-" ? "." : nil)
        } catch let e as FileReadError {
            throw RulesError(lines: [ConfigError(file: name, line: 0, column: 0, message: e.message).description])
        }
    }

    /// Parses what `read` returned, with `tunables` in force before the file's `set` lines.
    public static func parse(_ source: RulesSource, defines: [String: String], tunables: Tunables = Tunables(),
                             showKeys: Bool) throws -> LoadedRules {
        let c: Configuration
        do {
            c = try ConfigParser.parse(text: source.text, fileName: source.name, defines: defines,
                                       baseDirectory: source.directory, tunables: tunables, checkSecrecy: true)
        } catch let e as ConfigErrors {
            throw RulesError(lines: e.errors.map(\.description))
        }
        return LoadedRules(canonical: Printer.configuration(c, showKeys: true),
                           listing: Printer.configuration(c, showKeys: showKeys),
                           warnings: c.warnings.map { "\($0.location): warning: \($0.message)" })
    }

    /// `read` then `parse` with the built-in defaults.
    public static func load(_ path: String, defines: [String: String], showKeys: Bool) throws -> LoadedRules {
        try parse(read(path), defines: defines, showKeys: showKeys)
    }

    /// Tunables from a daemon's table; names this encctl does not know are ignored.
    public static func tunables(_ table: [String: Int]) -> Tunables {
        var t = Tunables()
        for (name, value) in table where Tunables.info(name) != nil {
            try? t.set(name, to: String(value))
        }
        return t
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
