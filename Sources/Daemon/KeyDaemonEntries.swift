// KeyDaemonEntries: the structured SAs and flows a key daemon (encd-iked) sends with
// `add` and `remove`, checked as strictly as ipsec.conf(5) checks the same clauses and
// turned into the policy model. Every error names the entry and field ("sas[1].encKey:
// …") and nothing is applied when one is found. Keys arrive in hex and become
// SecretKeys at once; no error text quotes them.

import Config
import Control
import Crypto
import EncCore
import IPsec

enum KeyDaemonEntries {
    /// iked's replay window for negotiated SAs.
    static let defaultReplay = 64

    /// An owner name: 1-64 printable ASCII characters without spaces, and not "config"
    /// (what `show` calls the configuration's own state).
    static func owner(_ s: String?) throws -> String {
        guard let s, !s.isEmpty else { throw ControlFailure("\"owner\" missing: name the key daemon (\"encd-iked\")") }
        guard s.utf8.count <= 64, s.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw ControlFailure("invalid owner: expected 1 to 64 printable characters without spaces")
        }
        guard s != "config" else { throw ControlFailure("owner \"config\" is the configuration's: a key daemon names itself") }
        return s
    }

    static func proto(_ s: String?, _ at: String) throws -> IPsecProtocol {
        switch s ?? "esp" {
        case "esp": return .esp
        case "ah": return .ah
        default: throw ControlFailure("\(at).proto: expected \"esp\" or \"ah\"")
        }
    }

    static func address(_ s: String?, _ at: String) throws -> IPAddress {
        guard let s else { throw ControlFailure("\(at): missing (an IPv4 or IPv6 address)") }
        guard let a = IPAddress(s) else { throw ControlFailure("\(at): \"\(s)\" is not an IPv4 or IPv6 address") }
        return a
    }

    static func spi(_ v: UInt32, _ at: String) throws -> UInt32 {
        guard v >= 0x100 else { throw ControlFailure("\(at).spi: \(v) is reserved (SPIs 0 to 255, RFC 4303 §2.1)") }
        return v
    }

    /// The (destination, SPI, protocol) of an SA entry; for `remove`, which needs no keys.
    static func key(_ e: SAEntry, _ at: String) throws -> SAKey {
        SAKey(destination: try address(e.destination, "\(at).destination"), spi: try spi(e.spi, at),
              proto: try proto(e.proto, at))
    }

    static func sa(_ e: SAEntry, _ at: String, owner: String) throws -> SASpec {
        let proto = try proto(e.proto, at)
        let mode: IPsecMode
        switch e.mode ?? "tunnel" {
        case "tunnel": mode = .tunnel
        case "transport": mode = .transport
        default: throw ControlFailure("\(at).mode: expected \"tunnel\" or \"transport\"")
        }
        let source = try address(e.source, "\(at).source")
        let destination = try address(e.destination, "\(at).destination")
        guard source.family == destination.family else {
            throw ControlFailure("\(at): source and destination address families differ")
        }
        var spec = SASpec(proto: proto, mode: mode, source: source, destination: destination, spi: try spi(e.spi, at),
                          replayWindow: e.replay ?? defaultReplay, extendedSequence: e.esn ?? false,
                          owner: owner, child: e.child)
        // The sizes ipsec.conf's `replay` takes (and ReplayWindow holds).
        let window = Tunables.info("ipsec.replay_window")!
        guard window.accepts(spec.replayWindow) else {
            throw ControlFailure("\(at).replay: expected \(window.rangeText) packets")
        }
        if proto == .ah {
            guard e.enc == nil, e.encKey == nil else { throw ControlFailure("\(at): ah does not provide encryption: no enc or encKey") }
            guard e.udpencap == nil else { throw ControlFailure("\(at): ah cannot be UDP-encapsulated (RFC 3948 is for esp)") }
            guard e.auth != nil else { throw ControlFailure("\(at).auth: ah needs an integrity algorithm") }
        } else {
            guard let name = e.enc else { throw ControlFailure("\(at).enc: missing (an ipsec.conf cipher name such as \"aes-128-gcm\")") }
            guard let alg = EncryptionAlgorithm.named(name) else { throw ControlFailure("\(at).enc: unknown cipher \"\(name)\"") }
            spec.encryption = alg
            if alg.cipher != .null {
                let k = try secret(e.encKey, "\(at).encKey")
                guard alg.accepts(keyMaterialBits: k.bits) else {
                    throw ControlFailure("\(at).encKey: \(alg.name) needs \(alg.keySizeText) of key material, got \(k.bits) bits")
                }
                spec.encryptionKey = k
            } else if e.encKey != nil {
                throw ControlFailure("\(at).encKey: enc null takes no key")
            }
            if alg.cipher.isCombined, e.auth != nil || e.authKey != nil {
                throw ControlFailure("\(at).auth: authentication is implicit for \(alg.name)")
            }
            if !alg.cipher.isCombined, e.auth == nil {
                throw ControlFailure("\(at).auth: \(alg.name) needs an integrity algorithm")
            }
            if let u = e.udpencap {
                spec.encapsulation = UDPEncapsulation(port: u.port ?? 4500, peerPort: u.peerPort)
                guard spec.encapsulation!.port != 0, spec.encapsulation!.peerPort != 0 else {
                    throw ControlFailure("\(at).udpencap: port 0")
                }
            }
        }
        if let name = e.auth {
            guard let alg = IntegrityAlgorithm.named(name) else { throw ControlFailure("\(at).auth: unknown algorithm \"\(name)\"") }
            let k = try secret(e.authKey, "\(at).authKey")
            guard k.bits == alg.keyBits else {
                throw ControlFailure("\(at).authKey: \(alg.name) needs \(alg.keyBits) bits, got \(k.bits) bits")
            }
            spec.integrity = alg
            spec.integrityKey = k
        } else if e.authKey != nil {
            throw ControlFailure("\(at).authKey: given without \"auth\"")
        }
        spec.softLifetime = try lifetime(e.soft, "\(at).soft")
        spec.hardLifetime = try lifetime(e.hard, "\(at).hard")
        for (s, h, what) in [(spec.softLifetime.bytes, spec.hardLifetime.bytes, "bytes"),
                             (spec.softLifetime.packets, spec.hardLifetime.packets, "packets"),
                             (spec.softLifetime.seconds, spec.hardLifetime.seconds, "seconds")] {
            if let s, let h, s > h { throw ControlFailure("\(at).soft.\(what): above the hard limit") }
        }
        return spec
    }

    private static func secret(_ hex: String?, _ at: String) throws -> SecretKey {
        guard let hex else { throw ControlFailure("\(at): missing (hex)") }
        guard let k = SecretKey(hex: hex), k.bits > 0 else { throw ControlFailure("\(at): expected an even number of hex digits") }
        return k
    }

    private static func lifetime(_ e: LifetimeEntry?, _ at: String) throws -> Lifetime {
        guard let e else { return Lifetime() }
        for (v, what) in [(e.bytes, "bytes"), (e.packets, "packets"), (e.seconds, "seconds")] where v == 0 {
            throw ControlFailure("\(at).\(what): 0 (leave it out for no limit)")
        }
        return Lifetime(bytes: e.bytes, packets: e.packets, seconds: e.seconds)
    }

    static func flow(_ e: FlowEntry, _ at: String, owner: String?) throws -> FlowSpec {
        let direction: FlowDirection
        switch e.direction {
        case "in": direction = .inbound
        case "out": direction = .outbound
        default: throw ControlFailure("\(at).direction: expected \"in\" or \"out\"")
        }
        func prefix(_ s: String, _ field: String) throws -> IPPrefix {
            guard let p = IPPrefix(s, allowHostBits: false) else {
                throw ControlFailure("\(at).\(field): \"\(s)\" is not an address or prefix without host bits")
            }
            return p
        }
        let source = try prefix(e.source, "source"), destination = try prefix(e.destination, "destination")
        guard source.family == destination.family else { throw ControlFailure("\(at): source and destination address families differ") }
        if e.sourcePort != nil || e.destinationPort != nil {
            guard let p = e.upperProtocol, [6, 17, 132].contains(p) else {
                throw ControlFailure("\(at): ports need upperProtocol tcp (6), udp (17) or sctp (132)")
            }
        }
        guard let type = FlowType(rawValue: e.type ?? "require") else {
            throw ControlFailure("\(at).type: expected one of \(FlowType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return FlowSpec(proto: try proto(e.proto, at), direction: direction, upperProtocol: e.upperProtocol,
                        source: source, sourcePort: e.sourcePort, destination: destination,
                        destinationPort: e.destinationPort,
                        local: try e.local.map { try address($0, "\(at).local") },
                        peer: try e.peer.map { try address($0, "\(at).peer") },
                        type: type, owner: owner, child: e.child)
    }
}
