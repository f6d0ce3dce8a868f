// The result of parsing ipsec.conf, and the entry points that produce it.

import IPsec

/// A parsed ipsec.conf: the SPD entries, the SAs and the tunables.
public struct Configuration: Sendable {
    /// Flows in file order; a rule without `in`/`out` yields its `out` flow followed by
    /// the mirrored `in` flow, per address pair.
    public var flows: [FlowSpec]
    /// SAs in file order; `spi X:Y` yields A→B (X) followed by B→A (Y). Replay windows
    /// and UDP ports left to the tunables are already filled in.
    public var sas: [SASpec]
    public var tunables: Tunables
    /// Things that were accepted but may not mean what was intended (host bits of a
    /// network that were cleared). Same format as errors.
    public var warnings: [ConfigError]

    public init(flows: [FlowSpec] = [], sas: [SASpec] = [], tunables: Tunables = Tunables(),
                warnings: [ConfigError] = []) {
        self.flows = flows
        self.sas = sas
        self.tunables = tunables
        self.warnings = warnings
    }
}

public enum ConfigParser {
    /// Reads a file named in the configuration (an `include` or a key `file`); the path
    /// is already resolved against the including file's directory.
    public typealias FileReader = (String) throws -> String

    /// Parses configuration text.
    /// - Parameters:
    ///   - fileName: the name errors carry.
    ///   - defines: `-D name=value` macros; they win over definitions in the file.
    ///   - baseDirectory: where relative `include` and key `file` names are looked up;
    ///     default: the directory of `fileName`.
    ///   - readFile: reads included and key files (default: the file system).
    ///   - tunables: the tunables in force before the text's own `set` lines (a running
    ///     daemon's, when encctl loads text into it); they fill in SA defaults.
    ///   - checkSecrecy: `fileName` and every file it names were read from disk: refuse
    ///     any that others may write, or that holds keys and others may read.
    /// - Throws: `ConfigErrors` with every error found, in file order. Nothing is
    ///   returned when there is any error.
    public static func parse(text: String, fileName: String = "stdin", defines: [String: String] = [:],
                             baseDirectory: String? = nil,
                             readFile: @escaping FileReader = ConfigParser.readFromDisk,
                             tunables: Tunables = Tunables(), checkSecrecy: Bool = false) throws -> Configuration {
        var bad = [ConfigError]()
        for name in defines.keys.sorted() where !MacroTable.isValidName(name) {
            bad.append(ConfigError(file: "-D", line: 0, column: 0,
                                   message: "macro name \"\(name)\" may contain only letters, digits and _"))
        }
        if !bad.isEmpty { throw ConfigErrors(bad) }
        let session = ParseSession(defines: defines, readFile: readFile)
        session.tunables = tunables
        if checkSecrecy {
            session.fileMode = Files.mode
            if fileName != "stdin" { session.filesRead.append(fileName) }
        }
        let directory = baseDirectory ?? Files.directory(of: fileName)
        session.parseFile(text: text, name: fileName, directory: directory,
                          identity: Files.identity(Files.resolve(fileName, relativeTo: ".")))
        return try session.finish()
    }

    /// Reads and parses a file; "-" reads standard input (named "stdin" in errors, with
    /// relative names looked up in the current directory), as `ipsecctl -f -`.
    public static func load(path: String, defines: [String: String] = [:]) throws -> Configuration {
        let text: String
        do {
            text = try Files.read(path)
        } catch let e as FileReadError {
            throw ConfigErrors([ConfigError(file: path == "-" ? "stdin" : path, line: 0, column: 0, message: e.message)])
        }
        if path == "-" { return try parse(text: text, fileName: "stdin", defines: defines, baseDirectory: ".", checkSecrecy: true) }
        return try parse(text: text, fileName: path, defines: defines, checkSecrecy: true)
    }

    /// The default `FileReader`: the whole file from disk ("-" = standard input).
    public static func readFromDisk(_ path: String) throws -> String { try Files.read(path) }

    /// Splits a `-D name=value` argument at its first "="; nil without one or with an
    /// invalid name.
    public static func parseDefine(_ argument: String) -> (name: String, value: String)? {
        guard let eq = argument.firstIndex(of: "=") else { return nil }
        let name = String(argument[..<eq])
        guard MacroTable.isValidName(name) else { return nil }
        return (name, String(argument[argument.index(after: eq)...]))
    }
}
