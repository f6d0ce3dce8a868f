// The statement level of the recursive-descent parser: one statement per logical line
// (macro definition, include, flow, SA, set). An error abandons its statement, is
// recorded, and parsing resumes on the next line, so every error of a file is reported
// (as ipsecctl does); `finish` then throws them all.

import IPsec

/// Macros: `-D` definitions are persistent and win over the file's, as in ipsecctl.
package struct MacroTable {
    private var values: [String: String]
    private let persistent: Set<String>

    package init(defines: [String: String]) {
        values = defines
        persistent = Set(defines.keys)
    }

    package static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_")
        }
    }

    package mutating func define(_ name: String, _ value: String) {
        if persistent.contains(name) { return }
        values[name] = value
    }

    package func value(_ name: String) -> String? { values[name] }
}

/// An SA as parsed, before the tunables that may follow it in the file are known.
struct PendingSA {
    var spec: SASpec
    var replayGiven: Bool
    var portGiven: Bool
    var location: SourceLocation
}

/// State shared by a file and the files it includes.
final class ParseSession {
    var errors: [ConfigError] = []
    var warnings: [ConfigError] = []
    var macros: MacroTable
    var flows: [FlowSpec] = []
    var sas: [PendingSA] = []
    var tunables = Tunables()
    /// Set while the rest of a failed statement is skipped: its lexical errors are noise.
    var quiet = false
    /// The files being parsed, outermost first, as (identity, display name).
    var includeStack: [(identity: String, name: String)] = []
    let readFile: ConfigParser.FileReader
    static let maxIncludeDepth = 16
    /// Files read from disk (the main one, includes, key files), and those that held
    /// keys, for the permission check (`checkSecrecy`).
    var filesRead: [String] = []
    var filesWithKeys: Set<String> = []
    /// Stats a file: nil when permissions are not checked (text from a client, tests).
    var fileMode: ((String) -> UInt32?)?

    init(defines: [String: String], readFile: @escaping ConfigParser.FileReader) {
        macros = MacroTable(defines: defines)
        self.readFile = readFile
    }

    func parseFile(text: String, name: String, directory: String, identity: String) {
        includeStack.append((identity, name))
        defer { includeStack.removeLast() }
        var parser = FileParser(text: text, name: name, directory: directory, session: self)
        parser.parseStatements()
    }

    /// As ipsecctl refuses them: a file others may change could change the policy, and
    /// one others may read gives away the keys it holds. Group read stays allowed.
    func checkSecrecy() {
        guard let fileMode else { return }
        var seen = Set<String>()
        for f in filesRead where seen.insert(f).inserted {
            guard let mode = fileMode(f) else { continue }
            let octal = "0" + String(mode & 0o7777, radix: 8)
            if mode & 0o022 != 0 {
                errors.append(ConfigError(file: f, line: 0, column: 0,
                    message: "writable by \(mode & 0o002 != 0 ? "anyone" : "its group") (mode \(octal)): refused, fix with chmod go-w \(f)"))
            } else if filesWithKeys.contains(f) && mode & 0o004 != 0 {
                errors.append(ConfigError(file: f, line: 0, column: 0,
                    message: "holds keys and is readable by anyone (mode \(octal)): refused, fix with chmod o-rwx \(f)"))
            }
        }
    }

    /// Fills in the tunable-dependent defaults, checks for duplicate SAs and file
    /// permissions, and returns the configuration or throws every error.
    func finish() throws -> Configuration {
        checkSecrecy()
        var seen: [SAKey: SourceLocation] = [:]
        var out = [SASpec]()
        for var p in sas {
            if !p.replayGiven { p.spec.replayWindow = tunables.replayWindow }
            if !p.portGiven, p.spec.encapsulation != nil { p.spec.encapsulation!.port = tunables.udpEncapPort }
            if let first = seen[p.spec.key] {
                errors.append(ConfigError(p.location, "duplicate SA \(p.spec.proto) spi 0x\(hex8(p.spec.spi)) to \(p.spec.destination): first defined at \(first)"))
            } else {
                seen[p.spec.key] = p.location
            }
            out.append(p.spec)
        }
        // One counter-mode or combined key on two SAs: both count from 1 (or renumbered,
        // from the same place), so (key, IV) pairs would repeat. Within one `spi OUT:IN`
        // the statement itself already refused it.
        for (later, first) in SASpec.sharedSequenceKeys(out) where sas[later].location != sas[first].location {
            let s = sas[later].spec, f = sas[first].spec
            errors.append(ConfigError(sas[later].location,
                "enckey for \(s.encryption?.name ?? "this SA") is already the key of \(f.proto) spi 0x\(hex8(f.spi)) to \(f.destination) (\(sas[first].location)): one key on two SAs would reuse nonces; give each SA its own key"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return Configuration(flows: flows, sas: out, tunables: tunables, warnings: warnings)
    }
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}

/// Abandons the current statement. `error` is nil when it was already reported (a
/// lexical error).
package struct StatementError: Error {
    package var error: ConfigError?
    package init(error: ConfigError?) { self.error = error }
}

/// Parses one file's statements.
struct FileParser: TokenParsing {
    var lexer: Lexer
    var lookahead: [Token] = []
    let name: String
    let directory: String
    let session: ParseSession

    init(text: String, name: String, directory: String, session: ParseSession) {
        self.name = name
        self.directory = directory
        self.session = session
        lexer = Lexer(text: text, file: name)
        lexer.macro = { [unowned session] in session.macros.value($0) }
        lexer.report = { [unowned session] in if !session.quiet { session.errors.append($0) } }
    }

    // MARK: statements

    static let openBSDKeywords: Set<String> = [
        "acquire", "active", "aggressive", "ah", "any", "auth", "authkey", "bundle", "bypass", "comp",
        "deny", "dontacq", "dstid", "dynamic", "enc", "enckey", "esp", "file", "flow", "from", "group",
        "ike", "in", "include", "interface", "ipcomp", "ipip", "lifetime", "local", "main", "out",
        "passive", "peer", "port", "proto", "psk", "quick", "require", "rsa", "spi", "srcid", "tag",
        "tcpmd5", "to", "transport", "tunnel", "type", "udpencap", "use",
    ]

    var keywords: Set<String> { FileParser.openBSDKeywords }
    func record(_ error: ConfigError) { session.errors.append(error) }
    func setQuiet(_ quiet: Bool) { session.quiet = quiet }
    func defineMacro(_ name: String, _ value: String) { session.macros.define(name, value) }

    mutating func parseStatement() throws {
        let t = peek()
        if case .word(let w, let quoted) = t.kind, !quoted, peek(1).isPunct("=") {
            return try parseMacroDefinition(w, t)
        }
        switch t.kind {
        case .word(let w, quoted: false):
            switch w {
            case "include": return try parseInclude()
            case "flow": return try parseFlow()
            case "esp", "ah", "tunnel", "transport", "from", "to": return try parseSA()
            case "set": return try parseSet()
            case "ike", "tcpmd5", "ipcomp", "ipip":
                throw fail(t, "\(w) rules are not supported: encd does manual keying of esp and ah only")
            default: break
            }
        default: break
        }
        throw unexpected(t, expected: "a rule (\"flow\", \"esp\", \"ah\", \"set\", \"include\") or a macro definition",
                         "at start of line")
    }

    mutating func parseInclude() throws {
        take()
        let (file, fileToken) = try expectWord("a file name", "after \"include\"")
        try expectEndOfLine("after include file name")
        if file.isEmpty { throw fail(fileToken, "include needs a file name") }
        let path = Files.resolve(file, relativeTo: directory)
        let identity = Files.identity(path)
        if let i = session.includeStack.firstIndex(where: { $0.identity == identity }) {
            let chain = session.includeStack[i...].map(\.name) + [path]
            throw fail(fileToken, "include loop: " + chain.joined(separator: " -> "))
        }
        if session.includeStack.count >= ParseSession.maxIncludeDepth {
            throw fail(fileToken, "failed to include file \(path): includes nested more than \(ParseSession.maxIncludeDepth) deep")
        }
        let text: String
        do {
            text = try session.readFile(path)
            session.filesRead.append(path)
        } catch let e as FileReadError {
            throw fail(fileToken, "failed to include file \(path): \(e.message)")
        } catch {
            throw fail(fileToken, "failed to include file \(path): \(error)")
        }
        session.parseFile(text: text, name: path, directory: Files.directory(of: path), identity: identity)
    }

    /// `set NAME VALUE` or `set NAME = VALUE`.
    mutating func parseSet() throws {
        take()
        let (name, nameToken) = try expectWord("a tunable name", "after \"set\"")
        guard Tunables.info(name) != nil else {
            throw fail(nameToken, "unknown tunable \"\(name)\": expected one of "
                + Tunables.table.map(\.name).joined(separator: ", "))
        }
        if peek().isPunct("=") { take() }
        let (value, valueToken) = try expectWord("a value", "after tunable name")
        do {
            try session.tunables.set(name, to: value)
        } catch let e as TunableError {
            throw fail(valueToken, e.message)
        }
        try expectEndOfLine("after tunable value")
    }
}
