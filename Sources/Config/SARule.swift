// `[esp|ah] [tunnel|transport] from A to B spi OUT[:IN] [udpencap [port N]]
//  [replay N] [esn] [lifetime soft|hard ...] [peerport N]
//  [auth ALG] [enc ALG] [authkey K[:K] | authkey file "F[:F]"] [enckey K[:K] | enckey file "F[:F]"]`
// spi X:Y with `from A to B`: X is the SA A→B, Y the SA B→A; keys pair up the same way.
// The clauses after the spi may come in any order, each at most once; the printer
// writes them in the order above.

import Crypto
import EncCore
import IPsec

/// Keys as written: one per direction, with the token that gave them (for errors).
struct KeySpec {
    var keys: [SecretKey]
    var token: Token
}

extension FileParser {
    mutating func parseSA() throws {
        let start = peek()
        var proto = IPsecProtocol.esp
        if accept("esp") != nil { proto = .esp } else if accept("ah") != nil { proto = .ah }
        var mode = IPsecMode.tunnel
        if accept("tunnel") != nil { mode = .tunnel } else if accept("transport") != nil { mode = .transport }

        let hosts = try parseRuleHosts("SA", endpointsContext: "in SA rule")
        if let p = hosts.sourcePort ?? hosts.destinationPort { throw fail(p.1, "port is not allowed in an SA rule") }
        let a = try saEndpoint(hosts.sources, "source")
        let b = try saEndpoint(hosts.destinations, "destination")
        if a.prefix.family != b.prefix.family {
            throw fail(b.location, "source/destination address families do not match")
        }

        _ = try expectKeyword("spi", "after destination address")
        let (spiText, spiToken) = try expectWord("an spi (OUT or OUT:IN)", "after \"spi\"")
        let spis = try parseSPIs(spiText, spiToken)

        var c = SAClauses()
        try parseSAClauses(&c)

        // Transforms, with ipsecctl's defaults and checks.
        var encryption: EncryptionAlgorithm? = nil
        var integrity: IntegrityAlgorithm? = c.auth?.0
        if proto == .ah {
            if let e = c.enc { throw fail(e.1, "ah does not provide encryption") }
            if let k = c.enckey { throw fail(k.token, "ah does not provide encryption: it takes no enckey") }
            if c.encapsulation != nil { throw fail(start, "ah cannot be UDP-encapsulated (RFC 3948 is for esp): drop udpencap or use esp") }
            integrity = integrity ?? .defaultAuth
        } else {
            let enc = c.enc?.0 ?? .defaultESP
            encryption = enc
            if enc.cipher.isCombined {
                if let a = c.auth { throw fail(a.1, "authentication is implicit for \(enc.name)") }
                if let k = c.authkey { throw fail(k.token, "authentication is implicit for \(enc.name): it takes no authkey") }
            } else {
                integrity = integrity ?? .defaultAuth
            }
            if enc.cipher == .null, let k = c.enckey { throw fail(k.token, "enc null takes no enckey") }
            if enc.cipher != .null, c.enckey == nil { throw fail(start, "no encryption key specified") }
        }
        if integrity != nil, c.authkey == nil { throw fail(start, "no authentication key specified") }

        // One key per SA.
        let count = spis.in == nil ? 1 : 2
        for (spec, name) in [(c.authkey, "authkey"), (c.enckey, "enckey")] {
            guard let spec, spec.keys.count != count else { continue }
            if count == 1 {
                throw fail(spec.token, "\(name) gives two keys (OUT:IN) but spi names one SA: use spi OUT:IN")
            }
            throw fail(spec.token, "spi OUT:IN names two SAs: \(name) needs two keys (OUT:IN)")
        }
        if let integrity, let spec = c.authkey {
            for k in spec.keys where k.bits != integrity.keyBits {
                throw fail(spec.token, "authkey for \(integrity.name) must be \(integrity.keyBits) bits, got \(k.bits) bits")
            }
        }
        if let encryption, encryption.cipher != .null, let spec = c.enckey {
            for k in spec.keys where !encryption.accepts(keyMaterialBits: k.bits) {
                throw fail(spec.token, "enckey for \(encryption.name) must be \(FileParser.keySizes(encryption)), got \(k.bits) bits")
            }
        }
        // Counter-mode and combined ciphers use the sequence number as IV; one key for
        // both directions would repeat (key, IV) pairs, since both SAs count from 1.
        if let encryption, encryption.cipher.saltBits > 0, let spec = c.enckey, spec.keys.count == 2,
           spec.keys[0] == spec.keys[1] {
            throw fail(spec.token, "enckey for \(encryption.name) must differ between the two directions: one key for both would reuse nonces")
        }
        if let p = c.peerPort, c.encapsulation == nil { throw fail(p.1, "peerport needs udpencap") }
        try FileParser.checkLifetimes(c)

        var encap: UDPEncapsulation? = nil
        if let e = c.encapsulation { encap = UDPEncapsulation(port: e.port ?? 4500, peerPort: c.peerPort?.0) }
        func make(_ src: IPAddress, _ dst: IPAddress, _ spi: UInt32, _ i: Int) -> PendingSA {
            let spec = SASpec(proto: proto, mode: mode, source: src, destination: dst, spi: spi,
                              encapsulation: encap,
                              encryption: encryption, encryptionKey: c.enckey?.keys[i],
                              integrity: integrity, integrityKey: c.authkey?.keys[i],
                              replayWindow: c.replay?.0 ?? 0, extendedSequence: c.esn != nil,
                              softLifetime: c.soft?.0 ?? Lifetime(), hardLifetime: c.hard?.0 ?? Lifetime())
            return PendingSA(spec: spec, replayGiven: c.replay != nil, portGiven: c.encapsulation?.port != nil,
                             location: start.location)
        }
        session.sas.append(make(a.prefix.address, b.prefix.address, spis.out, 0))
        if let spiIn = spis.in { session.sas.append(make(b.prefix.address, a.prefix.address, spiIn, 1)) }
    }

    func saEndpoint(_ list: [PlacedPrefix], _ what: String) throws -> PlacedPrefix {
        guard list.count == 1, list[0].prefix.isHost else {
            throw fail(list[0].location, "SA \(what) must be a single address, found \(list.count == 1 ? "\(list[0].prefix)" : "a list or any")")
        }
        return list[0]
    }

    // MARK: SPI

    /// "OUT" or "OUT:IN"; numbers as strtoul(3) base 0 (0x hex, leading 0 octal).
    func parseSPIs(_ text: String, _ token: Token) throws -> (out: UInt32, in: UInt32?) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw fail(token, "invalid spi \(token): expected OUT or OUT:IN") }
        var values = [UInt32]()
        for p in parts {
            guard let v = FileParser.number(String(p)) else {
                throw fail(token, "invalid spi \(token): expected a number such as 0x1000, or OUT:IN")
            }
            guard v <= UInt64(UInt32.max), v != 0 else { throw fail(token, "\(v) not a valid spi") }
            guard !(1...255).contains(v) else { throw fail(token, "\(v) within reserved spi range") }
            values.append(UInt32(v))
        }
        return (values[0], values.count == 2 ? values[1] : nil)
    }

    /// strtoul(s, 0)-style: "0x1f", "017", "15"; nil on anything else.
    static func number(_ s: String) -> UInt64? {
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            let digits = s.dropFirst(2)
            return digits.isEmpty || !digits.allSatisfy(\.isHexDigit) ? nil : UInt64(digits, radix: 16)
        }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if s.count > 1, s.hasPrefix("0") { return UInt64(s.dropFirst(), radix: 8) }
        return UInt64(s)
    }

    /// "128, 192 or 256 bits", "40 to 448 bits in steps of 8", "160 bits (128-bit key + 32-bit salt)".
    static func keySizes(_ alg: EncryptionAlgorithm) -> String {
        let salt = alg.cipher.saltBits
        let sizes = Array(stride(from: alg.keyBits.lowerBound, through: alg.keyBits.upperBound, by: alg.keyStep))
        var text: String
        if sizes.count == 1 {
            text = "\(sizes[0] + salt) bits"
        } else if sizes.count <= 4 {
            let all = sizes.map { String($0 + salt) }
            text = all.dropLast().joined(separator: ", ") + " or " + all.last! + " bits"
        } else {
            text = "\(sizes.first! + salt) to \(sizes.last! + salt) bits in steps of \(alg.keyStep)"
        }
        if salt > 0 {
            let key = sizes.count == 1 ? "\(sizes[0])-bit key" : "key"
            text += " (\(key) + \(salt)-bit \(alg.cipher == .aesCTR ? "nonce" : "salt"))"
        }
        return text
    }
}
