// The clauses after an SA's spi: OpenBSD's udpencap, auth, enc, authkey, enckey, and
// encd's extensions replay, esn, lifetime and peerport. Keys are parsed straight into
// SecretKey; error messages never repeat key text.

import Crypto
import EncCore
import IPsec

struct SAClauses {
    var encapsulation: (port: UInt16?, token: Token)?
    var peerPort: (UInt16, Token)?
    var replay: (Int, Token)?
    var esn: Token?
    var soft: (Lifetime, Token)?
    var hard: (Lifetime, Token)?
    var auth: (IntegrityAlgorithm, Token)?
    var enc: (EncryptionAlgorithm, Token)?
    var authkey: KeySpec?
    var enckey: KeySpec?
}

extension FileParser {
    static let saClauseWords = ["udpencap", "replay", "esn", "lifetime", "peerport", "auth", "enc", "authkey", "enckey"]

    mutating func parseSAClauses(_ c: inout SAClauses) throws {
        var seen = Set<String>()
        while !peek().isEndOfLine {
            let t = peek()
            guard case .word(let w, quoted: false) = t.kind, FileParser.saClauseWords.contains(w) else {
                if case .word(let w, quoted: false) = t.kind, ["comp", "group", "bundle", "tag"].contains(w) {
                    throw fail(t, "\(w) is not supported in SA rules")
                }
                throw unexpected(t, expected: FileParser.saClauseWords.map { "\"\($0)\"" }.joined(separator: ", ")
                                 + " or end of line", "in SA rule")
            }
            // "lifetime" may appear twice (soft and hard); the rest once.
            if w != "lifetime", !seen.insert(w).inserted { throw fail(t, "\(w) already set") }
            take()
            switch w {
            case "udpencap":
                var port: UInt16? = nil
                if accept("port") != nil { port = try parsePortNumber("after \"udpencap port\"") }
                c.encapsulation = (port, t)
            case "peerport":
                c.peerPort = (try parsePortNumber("after \"peerport\""), t)
            case "replay":
                let (text, vt) = try expectWord("a window size", "after \"replay\"")
                let window = Tunables.info("ipsec.replay_window")!
                guard let v = decimal(text), window.accepts(v) else {
                    throw fail(vt, "replay window must be \(window.rangeText) packets, found \(vt)")
                }
                c.replay = (v, t)
            case "esn":
                c.esn = t
            case "lifetime":
                try parseLifetime(&c)
            case "auth":
                let (name, nt) = try expectWord("an authentication algorithm", "after \"auth\"")
                guard let alg = IntegrityAlgorithm.named(name) else {
                    throw fail(nt, "\(name) not a valid transform: auth takes "
                        + IntegrityAlgorithm.table.map(\.name).joined(separator: ", "))
                }
                c.auth = (alg, nt)
            case "enc":
                let (name, nt) = try expectWord("an encryption algorithm", "after \"enc\"")
                if ["des", "des-cbc"].contains(name.lowercased()) {
                    throw fail(nt, "DES is insecure and not supported (RFC 8221): use aes-128-gcm, aes or another enc")
                }
                guard let alg = EncryptionAlgorithm.named(name) else {
                    throw fail(nt, "\(name) not a valid transform: enc takes "
                        + EncryptionAlgorithm.table.map(\.name).joined(separator: ", "))
                }
                c.enc = (alg, nt)
            case "authkey":
                c.authkey = try parseKeySpec("authkey")
            default:
                c.enckey = try parseKeySpec("enckey")
            }
        }
    }

    /// A port number 1-65535 (no names: these are UDP encapsulation ports).
    mutating func parsePortNumber(_ context: String) throws -> UInt16 {
        let (text, t) = try expectWord("a port number", context)
        guard let v = decimal(text), (1...65535).contains(v) else { throw fail(t, "port must be 1 to 65535, found \(t)") }
        return UInt16(v)
    }

    // MARK: keys

    /// `HEX[:HEX]` or `file "F[:F]"`.
    mutating func parseKeySpec(_ keyword: String) throws -> KeySpec {
        if accept("file") != nil {
            let (names, t) = try expectWord("a key file name", "after \"\(keyword) file\"")
            let parts = names.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, !parts.contains(where: \.isEmpty) else {
                throw fail(t, "\(keyword) file takes one file name, or two as \"OUT:IN\"")
            }
            return KeySpec(keys: try parts.map { try readKeyFile(String($0), t) }, token: t)
        }
        let t = peek()
        guard let text = t.word else { throw unexpected(t, expected: "a hex key or \"file\"", "after \"\(keyword)\"") }
        take()
        if let current = session.includeStack.last?.name { session.filesWithKeys.insert(current) }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw fail(t, "\(keyword) takes one key, or two as OUT:IN") }
        return KeySpec(keys: try parts.map { try FileParser.hexKey(String($0), t, keyword) }, token: t)
    }

    static func hexKey(_ text: String, _ t: Token, _ keyword: String) throws -> SecretKey {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.allSatisfy(\.isHexDigit) else {
            throw StatementError(error: ConfigError(t.location, "\(keyword): keys need to be specified in hex digits"))
        }
        guard digits.count % 2 == 0, let key = SecretKey(hex: String(digits)) else {
            throw StatementError(error: ConfigError(t.location, "\(keyword): a key needs an even number of hex digits"))
        }
        return key
    }

    /// A key file: hex digits (an optional 0x, white space ignored), at most 1024 bytes,
    /// looked up relative to this file's directory.
    func readKeyFile(_ name: String, _ t: Token) throws -> SecretKey {
        let path = Files.resolve(name, relativeTo: directory)
        let text: String
        do {
            text = try session.readFile(path)
            session.filesRead.append(path)
            session.filesWithKeys.insert(path)
        } catch let e as FileReadError {
            throw fail(t, "cannot read key file \(path): \(e.message)")
        } catch {
            throw fail(t, "cannot read key file \(path): \(error)")
        }
        guard text.utf8.count <= 1024 else { throw fail(t, "\(path): key too large") }
        var digits = text.filter { !$0.isWhitespace }
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits.removeFirst(2) }
        guard !digits.isEmpty else { throw fail(t, "\(path): key too small") }
        guard digits.allSatisfy(\.isHexDigit), digits.count % 2 == 0, let key = SecretKey(hex: digits) else {
            throw fail(t, "\(path): keys need to be specified in hex digits (an even number of them)")
        }
        return key
    }

    // MARK: lifetimes

    /// `lifetime soft|hard` followed by one or more of `bytes N[K|M|G]`, `packets N`,
    /// `seconds N`, `firstuse N`.
    mutating func parseLifetime(_ c: inout SAClauses) throws {
        let (kind, kt) = try expectWord("\"soft\" or \"hard\"", "after \"lifetime\"")
        guard kt.isKeyword("soft") || kt.isKeyword("hard") else {
            throw unexpected(kt, expected: "\"soft\" or \"hard\"", "after \"lifetime\"")
        }
        if (kind == "soft" ? c.soft : c.hard) != nil { throw fail(kt, "\(kind) lifetime already set") }
        var life = Lifetime()
        var fields = Set<String>()
        while case .word(let w, quoted: false) = peek().kind, ["bytes", "packets", "seconds", "firstuse"].contains(w) {
            let ft = take()
            if !fields.insert(w).inserted { throw fail(ft, "\(w) already set for the \(kind) lifetime") }
            let (text, vt) = try expectWord("a number", "after \"\(w)\"")
            guard let v = FileParser.count(text, scaled: w == "bytes"), v > 0 else {
                let form = w == "bytes" ? "a number of at least 1, optionally with K, M or G" : "a number of at least 1"
                throw fail(vt, "invalid \(w) \(vt): expected \(form)")
            }
            switch w {
            case "bytes": life.bytes = v
            case "packets": life.packets = v
            case "seconds": life.seconds = v
            default: life.secondsSinceUse = v
            }
        }
        guard !fields.isEmpty else {
            throw unexpected(peek(), expected: "\"bytes\", \"packets\", \"seconds\" or \"firstuse\"", "after \"lifetime \(kind)\"")
        }
        if kind == "soft" { c.soft = (life, kt) } else { c.hard = (life, kt) }
    }

    /// Decimal; with `scaled`, a K, M or G suffix multiplies by 1024, 1024², 1024³.
    static func count(_ text: String, scaled: Bool) -> UInt64? {
        var digits = Substring(text)
        var factor: UInt64 = 1
        if scaled, let last = digits.last {
            switch last {
            case "K", "k": factor = 1 << 10
            case "M", "m": factor = 1 << 20
            case "G", "g": factor = 1 << 30
            default: break
            }
            if factor != 1 { digits = digits.dropLast() }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(digits) else { return nil }
        let (r, overflow) = v.multipliedReportingOverflow(by: factor)
        return overflow ? nil : r
    }

    /// A soft limit must come before the hard one.
    static func checkLifetimes(_ c: SAClauses) throws {
        guard let (soft, st) = c.soft, let (hard, _) = c.hard else { return }
        let pairs: [(String, UInt64?, UInt64?)] = [("bytes", soft.bytes, hard.bytes), ("packets", soft.packets, hard.packets),
                                                   ("seconds", soft.seconds, hard.seconds),
                                                   ("firstuse", soft.secondsSinceUse, hard.secondsSinceUse)]
        for (name, s, h) in pairs {
            if let s, let h, s > h {
                throw StatementError(error: ConfigError(st.location,
                    "soft lifetime \(name) (\(s)) must not exceed hard lifetime \(name) (\(h))"))
            }
        }
    }
}
