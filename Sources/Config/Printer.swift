// Flows and SAs in ipsecctl(8) -s format, which is also valid ipsec.conf input:
//   flow esp out proto tcp from 10.1.0.0/24 port ssh to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2 type require
//   esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes
// Differences from ipsecctl, so that parse → print → parse gives the same model:
//   - a flow whose peer is `any` prints "peer any" (ipsecctl prints no peer);
//   - SAs print encd's clauses when set: "udpencap port N [peerport P]", "replay N" (when
//     it differs from the configuration's default), "esn", "lifetime soft|hard ...".
// Keys are printed only when asked (`encctl -k`), as ipsecctl does.

import Crypto
import EncCore
import IPsec

public enum Printer {
    /// One flow, without a trailing newline.
    public static func flow(_ f: FlowSpec) -> String {
        var s = "flow \(f.proto) \(f.direction)"
        if let p = f.upperProtocol { s += " proto \(ProtocolNames.name(p))" }
        s += " from \(f.source)"
        if let p = f.sourcePort { s += " port \(ServiceNames.name(p))" }
        s += " to \(f.destination)"
        if let p = f.destinationPort { s += " port \(ServiceNames.name(p))" }
        if f.type != .deny && f.type != .bypass {
            if let l = f.local { s += " local \(l)" }
            s += " peer \(f.peer.map { "\($0)" } ?? "any")"
            if let id = f.sourceID { s += " srcid \(word(id))" }
            if let id = f.destinationID { s += " dstid \(word(id))" }
        }
        s += " type \(f.type)"
        return s
    }

    /// One SA, without a trailing newline. With `showKeys`, the keys follow on
    /// continuation lines (" \\\n\tauthkey 0x…"). `defaultReplayWindow` is the
    /// configuration's ipsec.replay_window: a window equal to it is not printed.
    public static func sa(_ sa: SASpec, showKeys: Bool = false, defaultReplayWindow: Int = Tunables().replayWindow) -> String {
        var s = "\(sa.proto) \(sa.mode) from \(sa.source) to \(sa.destination) spi 0x\(hex8(sa.spi))"
        if let e = sa.encapsulation {
            s += " udpencap port \(e.port)"
            if let p = e.peerPort { s += " peerport \(p)" }
        }
        if sa.replayWindow != defaultReplayWindow { s += " replay \(sa.replayWindow)" }
        if sa.extendedSequence { s += " esn" }
        s += lifetime("soft", sa.softLifetime) + lifetime("hard", sa.hardLifetime)
        if let a = sa.integrity { s += " auth \(a.name)" }
        if let e = sa.encryption { s += " enc \(e.name)" }
        if showKeys {
            if let k = sa.integrityKey { s += " \\\n\tauthkey \(k.hexForDisplay)" }
            if let k = sa.encryptionKey, k.count > 0 { s += " \\\n\tenckey \(k.hexForDisplay)" }
        }
        return s
    }

    /// `set` lines for the tunables that differ from their defaults.
    public static func tunables(_ t: Tunables) -> [String] {
        t.changed.map { "set \($0.name) \($0.value)" }
    }

    /// A whole configuration as ipsec.conf text: changed tunables, flows, SAs, one per
    /// line. Without `showKeys` the SAs lack keys, so the text only parses back with them.
    public static func configuration(_ c: Configuration, showKeys: Bool = false) -> String {
        var lines = tunables(c.tunables)
        lines += c.flows.map(flow)
        lines += c.sas.map { sa($0, showKeys: showKeys, defaultReplayWindow: c.tunables.replayWindow) }
        return lines.map { $0 + "\n" }.joined()
    }

    private static func lifetime(_ kind: String, _ l: Lifetime) -> String {
        if l.isUnlimited { return "" }
        var s = " lifetime \(kind)"
        if let v = l.bytes { s += " bytes \(v)" }
        if let v = l.packets { s += " packets \(v)" }
        if let v = l.seconds { s += " seconds \(v)" }
        if let v = l.secondsSinceUse { s += " firstuse \(v)" }
        return s
    }

    /// An identity as a word, quoted when it would not lex as one.
    private static func word(_ s: String) -> String {
        let plain = !s.isEmpty && Lexer.startsWord(s.utf8.first!) && s.utf8.allSatisfy(Lexer.continuesWord)
            && !s.contains("\"") && !s.contains("'") && !s.contains("\\")
        return plain ? s : "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\\\"") + "\""
    }
}

extension Configuration: CustomStringConvertible {
    /// The configuration as ipsec.conf text, keys left out.
    public var description: String { Printer.configuration(self) }
}
