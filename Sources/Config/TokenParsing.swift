// What every parse.y-style configuration parser here shares (ipsec.conf(5) for encd,
// iked.conf(5) for encd-iked): tokens with lookahead, "expected X, found Y" errors at
// file:line:column, the statement loop that records an error and resumes on the next
// line, and macro definitions.

package protocol TokenParsing {
    var lexer: Lexer { get set }
    var lookahead: [Token] { get set }
    /// Words that cannot name a macro.
    var keywords: Set<String> { get }
    func record(_ error: ConfigError)
    /// Set while the rest of a failed statement is skipped (its lexical errors are noise).
    func setQuiet(_ quiet: Bool)
    func defineMacro(_ name: String, _ value: String)
    /// One statement, up to (not including) its end of line.
    mutating func parseStatement() throws
}

extension TokenParsing {
    package mutating func peek(_ n: Int = 0) -> Token {
        while lookahead.count <= n { lookahead.append(lexer.next()) }
        return lookahead[n]
    }

    @discardableResult
    package mutating func take() -> Token {
        let t = peek()
        lookahead.removeFirst()
        return t
    }

    /// Takes the next token if it is the unquoted keyword.
    package mutating func accept(_ keyword: String) -> Token? {
        peek().isKeyword(keyword) ? take() : nil
    }

    /// The error "expected X CONTEXT, found Y" at `token`.
    package func unexpected(_ token: Token, expected: String, _ context: String = "") -> StatementError {
        if token.kind == .invalid { return StatementError(error: nil) }
        let ctx = context.isEmpty ? "" : " " + context
        return StatementError(error: ConfigError(token.location, "expected \(expected)\(ctx), found \(token)"))
    }

    package func fail(_ token: Token, _ message: String) -> StatementError {
        StatementError(error: ConfigError(token.location, message))
    }

    package func fail(_ location: SourceLocation, _ message: String) -> StatementError {
        StatementError(error: ConfigError(location, message))
    }

    /// The next token must be a word (quoted or not); `what` names it for the error.
    package mutating func expectWord(_ what: String, _ context: String = "") throws -> (String, Token) {
        let t = peek()
        guard let w = t.word else { throw unexpected(t, expected: what, context) }
        take()
        return (w, t)
    }

    package mutating func expectKeyword(_ keyword: String, _ context: String) throws -> Token {
        guard let t = accept(keyword) else { throw unexpected(peek(), expected: "\"\(keyword)\"", context) }
        return t
    }

    package mutating func expectEndOfLine(_ context: String) throws {
        let t = peek()
        guard t.isEndOfLine else { throw unexpected(t, expected: "end of line", context) }
    }

    /// Skips the rest of a statement that failed, through its newline.
    package mutating func skipLine() {
        setQuiet(true)
        defer { setQuiet(false) }
        while true {
            let t = take()
            if t.isEndOfLine { if t.kind == .eof { lookahead.insert(t, at: 0) }; return }
        }
    }

    package mutating func parseStatements() {
        while true {
            let t = peek()
            if t.kind == .eof { return }
            if t.kind == .newline { take(); continue }
            do {
                try parseStatement()
                if take().kind == .eof { return }  // every statement ends at its end of line
            } catch let e as StatementError {
                if let error = e.error { record(error) }
                skipLine()
            } catch {
                record(ConfigError(t.location, "\(error)"))
                skipLine()
            }
        }
    }

    /// `name = "value" ...`: the words after "=" joined by single spaces.
    package mutating func parseMacroDefinition(_ name: String, _ nameToken: Token) throws {
        take(); take()  // name, "="
        if keywords.contains(name) {
            throw fail(nameToken, "\"\(name)\" is a keyword and cannot name a macro")
        }
        guard MacroTable.isValidName(name) else {
            throw fail(nameToken, "macro name \"\(name)\" may contain only letters, digits and _")
        }
        var parts = [String]()
        while let w = peek().word { parts.append(w); take() }
        guard !parts.isEmpty else { throw unexpected(peek(), expected: "a value", "after \"\(name) =\"") }
        try expectEndOfLine("after macro value")
        defineMacro(name, parts.joined(separator: " "))
    }
}
