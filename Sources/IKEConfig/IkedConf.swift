// iked.conf(5) for encd-iked: `ikev2` policies, macros, `include` and `set`, with
// ipsec.conf's lexer and error conventions (file:line:column, every error of a file,
// a PSK never printed). Addresses are numeric. The clauses of an `ikev2` rule are
// iked's; this parser takes them in any order after the rule's flags, each once
// (`from`/`to` pairs, `ikesa` and `childsa` may repeat).
//
//   ikev2 [name] [quick] [passive|active] [tunnel|transport] [natt] [esp] [inet|inet6]
//         [proto P] from A [port P] to B [port P] [from ... to ...]... [local L] [peer P]
//         [ikesa enc E... prf P... [auth A...] group G...]... [childsa enc E... [auth A...]
//         [group G...] [esn|noesn]]... [srcid ID] [dstid ID] [ikelifetime T]
//         [lifetime T [bytes B]] [psk "secret" | psk 0xHEX | rsa | ecdsa256 | ecdsa384 | rfc7427]

import Config
import Crypto
import EncCore
import IKE
import IKECrypto

/// `set` options (iked.conf(5) "Global configuration").
public struct IkedSettings: Sendable, Equatable {
    /// Rules without `active`/`passive` initiate (iked's default: `set active`).
    public var activeByDefault = true
    /// Announce RFC 7383 fragmentation (received fragments are always reassembled).
    public var fragmentation = true
    /// Seconds between liveness checks of an idle-inbound IKE SA (iked: 60).
    public var dpdCheckInterval = 60
    /// A new IKE SA with a peer ID replaces the older ones (iked's enforcesingleikesa).
    public var enforceSingleIKESA = false
    public init() {}
}

public struct IkedConfiguration: Sendable {
    public var policies: [IKEPolicy]
    public var settings: IkedSettings
}

public enum IkedConfParser {
    /// Parses iked.conf text; throws every error found (nothing is returned then).
    /// `checkSecrecy`: the file and its includes were read from disk and must not be
    /// readable or writable by group or others (they hold PSKs).
    public static func parse(text: String, fileName: String = "stdin", defines: [String: String] = [:],
                             readFile: @escaping ConfigParser.FileReader = ConfigParser.readFromDisk,
                             checkSecrecy: Bool = false) throws(ConfigErrors) -> IkedConfiguration {
        for name in defines.keys.sorted() where !MacroTable.isValidName(name) {
            throw ConfigErrors([ConfigError(file: "-D", line: 0, column: 0, message: "macro name \"\(name)\" may contain only letters, digits and _")])
        }
        let session = IkedSession(defines: defines, readFile: readFile)
        if checkSecrecy { session.fileMode = Files.mode }
        session.parseFile(text: text, name: fileName, directory: Files.directory(of: fileName),
                          identity: Files.identity(Files.resolve(fileName, relativeTo: ".")))
        if checkSecrecy && fileName != "stdin" { session.filesRead.insert(fileName, at: 0) }
        return try session.finish()
    }

    /// Reads and parses a file, refusing one that others may read or write.
    public static func load(path: String, defines: [String: String] = [:]) throws(ConfigErrors) -> IkedConfiguration {
        let text: String
        do {
            text = try ConfigParser.readFromDisk(path)
        } catch {
            throw ConfigErrors([ConfigError(file: path, line: 0, column: 0, message: "\(error)")])
        }
        return try parse(text: text, fileName: path, defines: defines, checkSecrecy: path != "-")
    }

    // MARK: transform names (RFC 8247)

    static let refused = "refused: RFC 8247 says MUST NOT or SHOULD NOT"
    static let ikeEncryption: [String: (UInt16, UInt16?)] = [
        "aes-128": (12, 128), "aes-256": (12, 256), "aes-128-gcm": (20, 128), "aes-256-gcm": (20, 256),
        "chacha20-poly1305": (28, nil),
    ]
    static let integrity: [String: UInt16] = ["hmac-sha2-256": 12, "hmac-sha2-384": 13, "hmac-sha2-512": 14]
    static let prfs: [String: UInt16] = ["hmac-sha2-256": 5, "hmac-sha2-384": 6, "hmac-sha2-512": 7]
    static let groups: [String: UInt16] = ["modp2048": 14, "ecp256": 19, "ecp384": 20, "curve25519": 31]
    static let weak: Set<String> = ["3des", "3des-cbc", "des", "hmac-md5", "hmac-sha1", "md5", "sha1", "modp768", "modp1024", "modp1536"]

    static func ike(enc: [(UInt16, UInt16?)], integ: [UInt16], prf: [UInt16], dh: [UInt16]) -> IKEProposal {
        var t = enc.map { IKETransform(type: 1, id: $0.0, attributes: $0.1.map { [.keyLength($0)] } ?? []) }
        t += integ.map { IKETransform(type: 3, id: $0) } + prf.map { IKETransform(type: 2, id: $0) } + dh.map { IKETransform(type: 4, id: $0) }
        return IKEProposal(number: 1, protocolID: 1, spi: [], transforms: t)
    }

    static func esp(enc: [(UInt16, UInt16?)], integ: [UInt16], dh: [UInt16], esn: [UInt16]) -> IKEProposal {
        var t = enc.map { IKETransform(type: 1, id: $0.0, attributes: $0.1.map { [.keyLength($0)] } ?? []) }
        t += integ.map { IKETransform(type: 3, id: $0) } + dh.map { IKETransform(type: 4, id: $0) } + esn.map { IKETransform(type: 5, id: $0) }
        return IKEProposal(number: 1, protocolID: 3, spi: [], transforms: t)
    }

    /// Without `ikesa`: AEADs first, then AES-CBC with HMAC-SHA2 (vendor gateways).
    public static let defaultIKEProposals = [
        ike(enc: [(20, 256), (20, 128), (28, nil)], integ: [], prf: [5, 6, 7], dh: [31, 19, 20, 14]),
        ike(enc: [(12, 256), (12, 128)], integ: [12, 13, 14], prf: [5, 6, 7], dh: [31, 19, 20, 14]),
    ]
    /// Without `childsa`: the same ciphers for ESP, without ESN.
    public static let defaultChildProposals = [
        esp(enc: [(20, 256), (20, 128), (28, nil)], integ: [], dh: [], esn: [0]),
        esp(enc: [(12, 256), (12, 128)], integ: [12, 13, 14], dh: [], esn: [0]),
    ]
}

/// State shared by a file and the files it includes.
final class IkedSession {
    var errors: [ConfigError] = []
    var quiet = false
    var macros: MacroTable
    var policies: [IKEPolicy] = []
    var names: [String: SourceLocation] = [:]
    var settings = IkedSettings()
    /// Whether each policy said active/passive itself (else `set` decides, wherever it is).
    var explicitActive: [Bool] = []
    var includeStack: [(identity: String, name: String)] = []
    var filesRead: [String] = []
    var fileMode: ((String) -> UInt32?)?
    let readFile: ConfigParser.FileReader

    init(defines: [String: String], readFile: @escaping ConfigParser.FileReader) {
        macros = MacroTable(defines: defines)
        self.readFile = readFile
    }

    func parseFile(text: String, name: String, directory: String, identity: String) {
        includeStack.append((identity, name))
        defer { includeStack.removeLast() }
        var parser = IkedFileParser(text: text, name: name, directory: directory, session: self)
        parser.parseStatements()
    }

    func finish() throws(ConfigErrors) -> IkedConfiguration {
        if let fileMode {
            for f in Set(filesRead).sorted() {
                guard let mode = fileMode(f), mode & 0o077 != 0 else { continue }
                errors.append(ConfigError(file: f, line: 0, column: 0,
                    message: "holds pre-shared keys and is accessible by group or others (mode 0\(String(mode & 0o7777, radix: 8))): refused, fix with chmod go-rwx \(f)"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        for i in policies.indices where !explicitActive[i] { policies[i].active = settings.activeByDefault && policies[i].peer != nil }
        return IkedConfiguration(policies: policies, settings: settings)
    }
}

struct IkedFileParser: TokenParsing {
    var lexer: Lexer
    var lookahead: [Token] = []
    let name: String
    let directory: String
    let session: IkedSession

    init(text: String, name: String, directory: String, session: IkedSession) {
        self.name = name
        self.directory = directory
        self.session = session
        lexer = Lexer(text: text, file: name)
        lexer.macro = { [unowned session] in session.macros.value($0) }
        lexer.report = { [unowned session] in if !session.quiet { session.errors.append($0) } }
    }

    static let ikedKeywords: Set<String> = [
        "active", "ah", "any", "auth", "bytes", "childsa", "default", "dstid", "ecdsa256", "ecdsa384", "enc", "esn",
        "esp", "from", "group", "ikelifetime", "ikesa", "ikev2", "include", "inet", "inet6", "lifetime", "local", "natt",
        "noesn", "passive", "peer", "port", "prf", "proto", "psk", "quick", "rfc7427", "rsa", "set", "skip", "srcid",
        "to", "transport", "tunnel",
    ]
    var keywords: Set<String> { Self.ikedKeywords }
    func record(_ error: ConfigError) { session.errors.append(error) }
    func setQuiet(_ quiet: Bool) { session.quiet = quiet }
    func defineMacro(_ name: String, _ value: String) { session.macros.define(name, value) }

    mutating func parseStatement() throws {
        let t = peek()
        if case .word(let w, false) = t.kind, peek(1).isPunct("=") { return try parseMacroDefinition(w, t) }
        if accept("ikev2") != nil { return try parseIKEv2(t) }
        if accept("set") != nil { return try parseSet() }
        if t.isKeyword("include") { return try parseInclude() }
        if t.isKeyword("ikev1") || t.isKeyword("ike") { throw fail(t, "IKEv1 is not supported: encd-iked speaks IKEv2 only") }
        throw unexpected(t, expected: "a rule (\"ikev2\", \"set\", \"include\") or a macro definition", "at start of line")
    }

    mutating func parseInclude() throws {
        take()
        let (file, token) = try expectWord("a file name", "after \"include\"")
        try expectEndOfLine("after include file name")
        let path = Files.resolve(file, relativeTo: directory)
        let identity = Files.identity(path)
        if let i = session.includeStack.firstIndex(where: { $0.identity == identity }) {
            throw fail(token, "include loop: " + (session.includeStack[i...].map(\.name) + [path]).joined(separator: " -> "))
        }
        guard session.includeStack.count < 16 else { throw fail(token, "failed to include file \(path): includes nested more than 16 deep") }
        let text: String
        do {
            text = try session.readFile(path)
        } catch {
            throw fail(token, "failed to include file \(path): \((error as? FileReadError)?.message ?? "\(error)")")
        }
        session.filesRead.append(path)
        session.parseFile(text: text, name: path, directory: Files.directory(of: path), identity: identity)
    }

    mutating func parseSet() throws {
        let (option, token) = try expectWord("an option", "after \"set\"")
        switch option {
        case "active": session.settings.activeByDefault = true
        case "passive": session.settings.activeByDefault = false
        case "fragmentation": session.settings.fragmentation = true
        case "nofragmentation": session.settings.fragmentation = false
        case "enforcesingleikesa": session.settings.enforceSingleIKESA = true
        case "noenforcesingleikesa": session.settings.enforceSingleIKESA = false
        case "dpd_check_interval":
            let (v, vt) = try expectWord("a number of seconds", "after dpd_check_interval")
            guard let n = Int(v), (0...86400).contains(n) else { throw fail(vt, "dpd_check_interval: expected 0 to 86400 seconds") }
            session.settings.dpdCheckInterval = n
        case "mobike", "nomobike":
            throw fail(token, "\(option): encd-iked does not do MOBIKE (RFC 4555); NATed peers are followed without it")
        default:
            throw fail(token, "unknown option \"\(option)\": expected active, passive, fragmentation, nofragmentation, dpd_check_interval, enforcesingleikesa")
        }
        try expectEndOfLine("after set \(option)")
    }

    // MARK: ikev2

    mutating func parseIKEv2(_ start: Token) throws {
        var name = "policy\(session.policies.count + 1)"
        if let w = peek().word, case .word(_, let quoted) = peek().kind, quoted || !Self.ikedKeywords.contains(w) {
            let t = take()
            if let first = session.names[w] { throw fail(t, "policy \"\(w)\" is already defined at \(first)") }
            name = w
        }
        var active: Bool?
        var mode = IKEChildMode.tunnel
        var natt = false
        var family: AddressFamily?
        var upper: UInt8 = 0
        _ = accept("quick")
        if accept("skip") != nil || accept("default") != nil {
            throw fail(lookahead.first?.location ?? start.location, "skip and default policies are not supported")
        }
        if accept("passive") != nil { active = false } else if accept("active") != nil { active = true }
        if accept("tunnel") != nil { mode = .tunnel } else if accept("transport") != nil { mode = .transport }
        if accept("natt") != nil { natt = true }
        if let t = accept("ah") { throw fail(t, "ah: encd-iked negotiates esp only") }
        _ = accept("esp")
        if accept("inet") != nil { family = .inet } else if accept("inet6") != nil { family = .inet6 }
        if accept("proto") != nil {
            let (p, pt) = try expectWord("a protocol", "after proto")
            guard let n = Self.protocolNumber(p) else { throw fail(pt, "unknown protocol \"\(p)\": expected tcp, udp, icmp, icmp6 or a number") }
            upper = n
        }
        var localTS: [IKETrafficSelector] = [], remoteTS: [IKETrafficSelector] = []
        guard peek().isKeyword("from") else { throw unexpected(peek(), expected: "\"from\"", "in ikev2 rule") }
        while accept("from") != nil {
            let from = try selector(family: &family, proto: upper)
            _ = try expectKeyword("to", "after the from address")
            let to = try selector(family: &family, proto: upper)
            localTS.append(from); remoteTS.append(to)
            if peek().isPunct(",") { take() }
        }
        var local: IPAddress?, peer: IPAddress?
        var ikeProposals: [IKEProposal] = [], childProposals: [IKEProposal] = []
        var srcid: IKEIdentity?, dstid: IKEIdentity?
        var authentication: IKEAuthentication?
        var ikeLifetime: UInt64?, childSeconds: UInt64?, childBytes: UInt64?
        var seen = Set<String>()
        while !peek().isEndOfLine {
            let t = take()
            guard case .word(let w, false) = t.kind else { throw unexpected(t, expected: "an ikev2 clause", "") }
            if !["ikesa", "childsa"].contains(w) {
                guard seen.insert(w).inserted else { throw fail(t, "\(w) given twice") }
            }
            switch w {
            case "local": local = try address(&family, "after local")
            case "peer":
                if accept("any") == nil { peer = try address(&family, "after peer") }
            case "ikesa": ikeProposals.append(try ikesa(t))
            case "childsa": childProposals.append(try childsa(t))
            case "srcid": srcid = try identity(w)
            case "dstid": dstid = try identity(w)
            case "ikelifetime": ikeLifetime = try duration("after ikelifetime")
            case "lifetime":
                childSeconds = try duration("after lifetime")
                if accept("bytes") != nil { childBytes = try bytes("after bytes") }
            case "psk", "rsa", "ecdsa256", "ecdsa384", "rfc7427":
                guard authentication == nil else { throw fail(t, "\(w): the rule already has an authentication (one of psk, rsa, ecdsa256, ecdsa384, rfc7427)") }
                let methods: [String: UInt8] = ["rsa": IKEAuthMethod.rsaSignature, "ecdsa256": IKEAuthMethod.ecdsaP256,
                                                "ecdsa384": IKEAuthMethod.ecdsaP384, "rfc7427": IKEAuthMethod.digitalSignature]
                authentication = w == "psk" ? .psk(try presharedKey(t)) : .signature(method: methods[w])
            default:
                throw fail(t, "unexpected \"\(w)\" in ikev2 rule: expected local, peer, ikesa, childsa, srcid, dstid, ikelifetime, lifetime, psk, rsa, ecdsa256, ecdsa384 or rfc7427")
            }
        }
        if active == true && peer == nil { throw fail(start, "active ikev2 rule \"\(name)\" needs a peer address to initiate to") }
        if let local, let peer, local.family != peer.family { throw fail(start, "local and peer address families differ") }
        var policy = IKEPolicy(name: name, active: active ?? false, local: local, peer: peer,
                               ikeProposals: ikeProposals.isEmpty ? IkedConfParser.defaultIKEProposals : ikeProposals,
                               childProposals: childProposals.isEmpty ? IkedConfParser.defaultChildProposals : childProposals,
                               localSelectors: localTS, remoteSelectors: remoteTS,
                               // iked: without one, a certificate and any signature method.
                               authentication: authentication ?? .signature(method: nil))
        policy.mode = mode
        policy.forceNATT = natt
        policy.localID = srcid
        policy.peerID = dstid
        if let ikeLifetime { policy.ikeLifetimeSeconds = ikeLifetime }
        if let childSeconds { policy.childLifetimeSeconds = childSeconds }
        if let childBytes { policy.childLifetimeBytes = childBytes }
        session.names[name] = start.location
        session.policies.append(policy)
        session.explicitActive.append(active != nil)
    }

    static func protocolNumber(_ p: String) -> UInt8? {
        switch p {
        case "tcp": return 6
        case "udp": return 17
        case "icmp": return 1
        case "icmp6", "ipv6-icmp": return 58
        case "gre": return 47
        default: return UInt8(p)
        }
    }

    mutating func address(_ family: inout AddressFamily?, _ context: String) throws -> IPAddress {
        let (w, t) = try expectWord("a numeric address", context)
        guard let a = IPAddress(w) else { throw fail(t, "\"\(w)\" is not a numeric IPv4 or IPv6 address (host names are not looked up)") }
        if let f = family, f != a.family { throw fail(t, "\(w) is \(a.family), the rule is \(f)") }
        family = a.family
        return a
    }

    mutating func selector(family: inout AddressFamily?, proto: UInt8) throws -> IKETrafficSelector {
        var (w, t) = try expectWord("an address, a prefix or \"any\"", "")
        if peek().isPunct("/") {
            take()
            w += "/" + (try expectWord("a prefix length", "after \"/\"").0)
        }
        let prefix: IPPrefix
        if w == "any" {
            prefix = .any(family ?? .inet)
        } else {
            guard let p = IPPrefix(w, allowHostBits: false) else {
                throw fail(t, "\"\(w)\" is not a numeric address or prefix without host bits (as 198.18.1.0/24)")
            }
            if let f = family, f != p.family { throw fail(t, "\(w) is \(p.family), the rule is \(f)") }
            family = p.family
            prefix = p
        }
        var port: UInt16?
        if let pt = accept("port") {
            let (v, vt) = try expectWord("a port number", "after port")
            guard proto == 6 || proto == 17 || proto == 132 else { throw fail(pt, "port needs proto tcp, udp or sctp") }
            guard let n = UInt16(v), n > 0 else { throw fail(vt, "\"\(v)\" is not a port number (1 to 65535)") }
            port = n
        }
        return IKETrafficSelector(prefix: prefix, ipProtocol: proto, port: port)
    }

    /// The transform lists after `ikesa` or `childsa`: keyword value pairs until a word
    /// that is not one of `allowed`.
    mutating func transforms(_ allowed: Set<String>, _ context: String) throws -> [String: [(String, Token)]] {
        var out: [String: [(String, Token)]] = [:]
        while let k = peek().word, case .word(_, false) = peek().kind, allowed.contains(k) {
            take()
            if k == "esn" || k == "noesn" { out[k, default: []].append((k, peek())); continue }
            let (v, t) = try expectWord("an algorithm", "after \(k) in \(context)")
            if IkedConfParser.weak.contains(v) { throw fail(t, "\(v): \(IkedConfParser.refused)") }
            out[k, default: []].append((v, t))
        }
        return out
    }

    mutating func ikesa(_ start: Token) throws -> IKEProposal {
        let t = try transforms(["enc", "auth", "prf", "group"], "ikesa")
        let enc = try (t["enc"] ?? []).map { v, tok in
            guard let e = IkedConfParser.ikeEncryption[v] else { throw fail(tok, "unknown ikesa enc \"\(v)\": expected \(IkedConfParser.ikeEncryption.keys.sorted().joined(separator: ", "))") }
            return e
        }
        let integ = try names(t["auth"], IkedConfParser.integrity, "ikesa auth")
        let prf = try names(t["prf"], IkedConfParser.prfs, "prf")
        let dh = try names(t["group"], IkedConfParser.groups, "group")
        guard !enc.isEmpty, !prf.isEmpty, !dh.isEmpty else { throw fail(start, "ikesa needs enc, prf and group") }
        let aead = enc.filter { $0.0 != 12 }, cbc = enc.filter { $0.0 == 12 }
        if !cbc.isEmpty && integ.isEmpty { throw fail(start, "ikesa enc aes-128/aes-256 needs an auth (hmac-sha2-256, -384 or -512)") }
        if !aead.isEmpty && !cbc.isEmpty { throw fail(start, "ikesa mixes combined-mode and CBC ciphers: give each its own ikesa") }
        if !aead.isEmpty && !integ.isEmpty { throw fail(start, "ikesa auth with a combined-mode cipher (\(t["enc"]![0].0)): leave auth out") }
        return IkedConfParser.ike(enc: enc, integ: integ, prf: prf, dh: dh)
    }

    mutating func childsa(_ start: Token) throws -> IKEProposal {
        let t = try transforms(["enc", "auth", "group", "esn", "noesn"], "childsa")
        let table = IkedConfParser.ikeEncryption
        let enc = try (t["enc"] ?? []).map { v, tok in
            guard let e = table[v] else { throw fail(tok, "unknown childsa enc \"\(v)\": expected \(table.keys.sorted().joined(separator: ", "))") }
            return e
        }
        let integ = try names(t["auth"], IkedConfParser.integrity, "childsa auth")
        let dh = try names(t["group"], IkedConfParser.groups, "group")
        guard !enc.isEmpty else { throw fail(start, "childsa needs enc") }
        let aead = enc.filter { $0.0 != 12 }, cbc = enc.filter { $0.0 == 12 }
        if !cbc.isEmpty && integ.isEmpty { throw fail(start, "childsa enc aes-128/aes-256 needs an auth (hmac-sha2-256, -384 or -512)") }
        if !aead.isEmpty && !cbc.isEmpty { throw fail(start, "childsa mixes combined-mode and CBC ciphers: give each its own childsa") }
        if !aead.isEmpty && !integ.isEmpty { throw fail(start, "childsa auth with a combined-mode cipher: leave auth out") }
        var esn: [UInt16] = []
        if t["esn"] != nil { esn.append(1) }
        if t["noesn"] != nil || esn.isEmpty { esn.append(0) }
        return IkedConfParser.esp(enc: enc, integ: integ, dh: dh, esn: esn)
    }

    func names(_ given: [(String, Token)]?, _ table: [String: UInt16], _ what: String) throws -> [UInt16] {
        try (given ?? []).map { v, tok in
            guard let id = table[v] else { throw fail(tok, "unknown \(what) \"\(v)\": expected \(table.keys.sorted().joined(separator: ", "))") }
            return id
        }
    }

    /// Seconds: N, Ns, Nm, Nh or Nd.
    mutating func duration(_ context: String) throws -> UInt64 {
        let (w, t) = try expectWord("a time (seconds, or with s, m, h or d)", context)
        let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var digits = Substring(w), unit: UInt64 = 1
        if let last = w.last, let u = units[last] { digits = digits.dropLast(); unit = u }
        guard let n = UInt64(digits), n > 0, n <= 365 * 86400 / unit else { throw fail(t, "\"\(w)\" is not a time from 1 second to 365 days") }
        return n * unit
    }

    /// Bytes: N, NK, NM or NG (powers of 1024).
    mutating func bytes(_ context: String) throws -> UInt64 {
        let (w, t) = try expectWord("a size (bytes, or with K, M or G)", context)
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        var digits = Substring(w), unit: UInt64 = 1
        if let last = w.last, let u = units[last] { digits = digits.dropLast(); unit = u }
        guard let n = UInt64(digits), n > 0, n <= (UInt64(1) << 50) / unit else { throw fail(t, "\"\(w)\" is not a size from 1 byte to 1024 TB") }
        return n * unit
    }

    /// srcid/dstid: an address, an FQDN, user@fqdn, or a distinguished name ("=" in it).
    mutating func identity(_ keyword: String) throws -> IKEIdentity {
        let (text, token) = try expectWord("an identity", "after \(keyword)")
        let id = IKEIdentity(text)
        if text.contains("=") && id.type != IKEIDType.derDN {
            throw fail(token, "\(keyword) \"\(text)\": not a distinguished name (\"/O=org/CN=name\" or \"O=org, CN=name\" with known attribute names)")
        }
        return id
    }

    /// `psk "text"` or `psk 0xHEX`; never echoed.
    mutating func presharedKey(_ start: Token) throws -> SecretKey {
        let t = peek()
        guard case .word(let w, let quoted) = t.kind else { throw unexpected(t, expected: "a pre-shared key (\"…\" or 0x…)", "after psk") }
        take()
        if !quoted, w.hasPrefix("0x") || w.hasPrefix("0X") {
            guard let key = SecretKey(hex: String(w.dropFirst(2))) else { throw fail(t, "psk: the hex key is not an even number of hex digits") }
            return key
        }
        guard !w.isEmpty else { throw fail(t, "psk: empty") }
        return SecretKey(Array(w.utf8))
    }
}
