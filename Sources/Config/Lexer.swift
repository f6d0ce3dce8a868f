// The ipsec.conf lexer, following ipsecctl's parse.y rules:
//   - blanks separate tokens; `#` starts a comment to the end of the line;
//   - `\` before a newline joins the next line (the newline is not a token);
//   - "..." and '...' quote a string (a `\` escapes the quote or a newline);
//   - `$name` (letters, digits, `_`) is replaced by the macro's value, lexed again
//     without further expansion; its tokens carry the position of the `$`;
//   - a word starts with a letter, digit, `:`, `_` or `*` and runs while the characters
//     are letters, digits or punctuation other than ( ) { } < > ! = / # ,
//   - those punctuation characters, and anything else, are one-character tokens.
// Errors found here are reported through `report` and yield an `.invalid` token, so the
// parser abandons the statement without adding a second message.

package struct Token: CustomStringConvertible {
    package enum Kind: Equatable {
        case word(String, quoted: Bool)
        case punct(UInt8)
        case newline
        case eof
        case invalid
    }

    package var kind: Kind
    package var location: SourceLocation

    /// The text of a word token (quoted or not).
    package var word: String? {
        if case .word(let s, _) = kind { return s }
        return nil
    }

    /// True for an unquoted word equal to `keyword` (a quoted "from" is a string).
    package func isKeyword(_ keyword: String) -> Bool {
        if case .word(let s, quoted: false) = kind { return s == keyword }
        return false
    }

    package func isPunct(_ c: Character) -> Bool {
        if case .punct(let b) = kind { return Character(Unicode.Scalar(b)) == c }
        return false
    }

    package var isEndOfLine: Bool {
        switch kind {
        case .newline, .eof: return true
        default: return false
        }
    }

    /// How an error message names this token. Words that look like key material
    /// (long hex strings) are not quoted.
    package var description: String {
        switch kind {
        case .word(let s, _):
            return Token.looksLikeKey(s) ? "a hex string (not shown)" : "\"\(s)\""
        case .punct(let b): return b < 0x80 ? "\"\(Character(Unicode.Scalar(b)))\"" : "a non-ASCII character"
        case .newline: return "end of line"
        case .eof: return "end of file"
        case .invalid: return "an invalid token"
        }
    }

    /// More than 8 hex digits (an SPI has at most 8): treat as a key, never echo it.
    static func looksLikeKey(_ s: String) -> Bool {
        var digits = 0
        for part in s.split(separator: ":", omittingEmptySubsequences: false) {
            var p = Substring(part)
            if p.hasPrefix("0x") || p.hasPrefix("0X") { p = p.dropFirst(2) }
            guard p.allSatisfy(\.isHexDigit) else { return false }
            digits = max(digits, p.count)
        }
        return digits > 8
    }
}

package struct Lexer {
    private let bytes: [UInt8]
    private let file: String
    private var index = 0
    private var line = 1
    private var column = 1
    /// For a macro's text: every token gets this location, and `$` is not expanded.
    private let fixedLocation: SourceLocation?
    private var pending: [Token] = []

    /// Looks a macro up (nil = not defined).
    package var macro: (String) -> String? = { _ in nil }
    /// Receives lexical errors.
    package var report: (ConfigError) -> Void = { _ in }

    package init(text: String, file: String) {
        self.bytes = Array(text.utf8)
        self.file = file
        self.fixedLocation = nil
    }

    private init(macroText: String, at location: SourceLocation) {
        self.bytes = Array(macroText.utf8)
        self.file = location.file
        self.fixedLocation = location
    }

    private var here: SourceLocation { fixedLocation ?? SourceLocation(file: file, line: line, column: column) }

    private func peekByte(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func advance() {
        let b = bytes[index]
        index += 1
        if b == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1
        }
    }

    /// Skips blanks and `\`-newline pairs.
    private mutating func skipBlanks() {
        while let b = peekByte() {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") {
                advance()
            } else if b == UInt8(ascii: "\\"), peekByte(1) == UInt8(ascii: "\n") {
                advance(); advance()
            } else {
                return
            }
        }
    }

    package mutating func next() -> Token {
        if !pending.isEmpty { return pending.removeFirst() }
        while true {
            skipBlanks()
            let start = here
            guard let c = peekByte() else { return Token(kind: .eof, location: start) }
            switch c {
            case UInt8(ascii: "#"):
                while let b = peekByte(), b != UInt8(ascii: "\n") { advance() }
                continue
            case UInt8(ascii: "\n"):
                advance()
                return Token(kind: .newline, location: start)
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                return quoted(start: start)
            case UInt8(ascii: "$") where fixedLocation == nil:
                if let t = expandMacro(start: start) { return t }
                continue
            default:
                if Lexer.startsWord(c) {
                    var out = [UInt8]()
                    while let b = peekByte(), Lexer.continuesWord(b) {
                        // `\` + newline inside a word joins the lines, as lgetc does.
                        if b == UInt8(ascii: "\\"), peekByte(1) == UInt8(ascii: "\n") { advance(); advance(); continue }
                        out.append(b)
                        advance()
                    }
                    return Token(kind: .word(String(decoding: out, as: UTF8.self), quoted: false), location: start)
                }
                advance()
                return Token(kind: .punct(c), location: start)
            }
        }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }

    static func startsWord(_ b: UInt8) -> Bool {
        isAlnum(b) || b == UInt8(ascii: ":") || b == UInt8(ascii: "_") || b == UInt8(ascii: "*")
    }

    static func continuesWord(_ b: UInt8) -> Bool {
        if isAlnum(b) { return true }
        guard b > 0x20 && b < 0x7F else { return false }  // ASCII punctuation only
        return !"(){}<>!=/#,".utf8.contains(b)
    }

    private mutating func quoted(start: SourceLocation) -> Token {
        let quote = bytes[index]
        advance()
        var out = [UInt8]()
        while true {
            guard let b = peekByte() else {
                report(ConfigError(start, "reached end of file while parsing quoted string"))
                return Token(kind: .invalid, location: start)
            }
            advance()
            if b == quote { break }
            if b == UInt8(ascii: "\\"), let n = peekByte() {
                if n == quote { out.append(n); advance(); continue }
                if n == UInt8(ascii: "\n") { advance(); continue }
            }
            out.append(b)
        }
        return Token(kind: .word(String(decoding: out, as: UTF8.self), quoted: true), location: start)
    }

    /// Replaces `$name` by the tokens of its value; nil when the value is empty.
    private mutating func expandMacro(start: SourceLocation) -> Token? {
        advance()  // "$"
        var name = [UInt8]()
        while let b = peekByte(), Lexer.isAlnum(b) || b == UInt8(ascii: "_") {
            name.append(b)
            advance()
        }
        let key = String(decoding: name, as: UTF8.self)
        guard !key.isEmpty else {
            report(ConfigError(start, "expected a macro name after \"$\""))
            return Token(kind: .invalid, location: start)
        }
        guard let value = macro(key) else {
            report(ConfigError(start, "macro '\(key)' not defined"))
            return Token(kind: .invalid, location: start)
        }
        var sub = Lexer(macroText: value, at: start)
        sub.report = report
        var tokens = [Token]()
        while true {
            let t = sub.next()
            if t.kind == .eof { break }
            tokens.append(t)
        }
        guard !tokens.isEmpty else { return nil }
        pending.append(contentsOf: tokens.dropFirst())
        return tokens[0]
    }
}
