// Addresses in rules: `any`, a numeric address with an optional /len, and `{ ... }`
// lists. Host names and interface names are refused: encd never resolves names, so a
// configuration means the same whether or not DNS answers.
//
// A network with host bits set (10.1.0.5/24) is accepted and masked (10.1.0.0/24), as
// OpenBSD's kernel stores it; a warning says so.

import EncCore

/// One address of a rule and where it was written.
struct PlacedPrefix {
    var prefix: IPPrefix
    var location: SourceLocation
}

extension FileParser {
    /// `any` | ADDR[/LEN] | `{ host [,] host ... }`; `any` yields 0.0.0.0/0 and ::/0.
    mutating func parseHosts(_ context: String) throws -> [PlacedPrefix] {
        let t = peek()
        if t.isKeyword("any") {
            take()
            return [PlacedPrefix(prefix: .any(.inet), location: t.location),
                    PlacedPrefix(prefix: .any(.inet6), location: t.location)]
        }
        if t.isPunct("{") {
            take()
            var out = [PlacedPrefix]()
            while true {
                if peek().isPunct("}") {
                    let close = take()
                    if out.isEmpty { throw fail(close, "empty address list") }
                    return out
                }
                if peek().isPunct(","), !out.isEmpty { take(); continue }
                out += try parseHosts("in address list")
            }
        }
        guard let w = t.word, !(t.isKeyword(w) && FileParser.openBSDKeywords.contains(w)) else {
            throw unexpected(t, expected: "an address, \"any\" or \"{\"", context)
        }
        return [try parsePrefix(context)]
    }

    /// ADDR[/LEN]
    mutating func parsePrefix(_ context: String) throws -> PlacedPrefix {
        let address = try parseAddress(context)
        let t = address.token
        var length = address.value.family.bitCount
        if peek().isPunct("/") {
            take()
            let (lenText, lenToken) = try expectWord("a prefix length", "after \"/\"")
            guard let l = decimal(lenText) else {
                throw unexpected(lenToken, expected: "a prefix length", "after \"/\"")
            }
            guard l >= 0, l <= address.value.family.bitCount else {
                throw fail(lenToken, "invalid prefix length \(l) for \(address.value): at most \(address.value.family.bitCount)")
            }
            length = l
        }
        let prefix = IPPrefix(address.value, length: length)
        if prefix.address != address.value {
            session.warnings.append(ConfigError(t.location,
                "host bits of \(address.value)/\(length) are set: using \(prefix)"))
        }
        return PlacedPrefix(prefix: prefix, location: t.location)
    }

    /// One numeric address (no /len).
    mutating func parseAddress(_ context: String) throws -> (value: IPAddress, token: Token) {
        let t = peek()
        guard let text = t.word, !(t.isKeyword(text) && FileParser.openBSDKeywords.contains(text)) else {
            throw unexpected(t, expected: "an address", context)
        }
        take()
        if let a = IPAddress(text) { return (a, t) }
        let numeric = text.allSatisfy { $0.isHexDigit || $0 == "." || $0 == ":" }
        if numeric { throw fail(t, "invalid address \(t)") }
        throw fail(t, "host names are not resolved: use a numeric address instead of \(t)")
    }

    /// A single host: an address not followed by "/" (peer, local, SA endpoints).
    mutating func parseSingleAddress(_ what: String, _ context: String) throws -> (value: IPAddress, token: Token) {
        if peek().isKeyword("any") || peek().isPunct("{") {
            throw fail(peek(), "\(what) must be a single address")
        }
        let a = try parseAddress(context)
        if peek().isPunct("/") {
            take()
            if let len = peek().word, decimal(len) == a.value.family.bitCount {
                take()
                return a
            }
            throw fail(a.token, "\(what) must be a single address, not a network")
        }
        return a
    }
}
