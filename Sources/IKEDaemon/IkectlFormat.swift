// What ikectl prints, and what encd-iked -nv prints: one block per IKE SA (as
// `ikectl show sa`) and one line set per policy (PSKs never shown).

import Control
import IKE
import IKEConfig

public enum IkectlClient {
    public static func call(_ request: IkectlRequest, socket: String) throws -> IkectlResponse {
        let c = try ControlClient(path: socket, daemon: "encd-iked")
        try Framing.send(request, to: c.fd)
        guard let r = try Framing.receive(IkectlResponse.self, from: c.fd, within: 5) else {
            throw ControlError("encd-iked closed the connection")
        }
        return r
    }
}

public enum IkectlFormat {
    public static func show(_ sas: [IkectlSA], dropped: [String: UInt64] = [:]) -> String {
        var out = sas.isEmpty ? "no IKE SAs\n" : ""
        for s in sas {
            out += "iked_sas: \(s.initiatorSPI):\(s.responderSPI) policy \(s.policy) \(s.role) \(s.state)\n"
            out += "  local \(s.local) remote \(s.remote)"
            if let id = s.peerID { out += " peerid \(id)" }
            if let nat = s.nat { out += " nat-\(nat)" }
            out += "\n"
            if let c = s.certificate { out += "  certificate \(c)\n" }
            if let suite = s.suite { out += "  ikesa \(suite)" + (s.age.map { " established \($0) s ago" } ?? "") + "\n" }
            for c in s.children {
                out += "  childsa spi in \(c.inboundSPI) out \(c.outboundSPI) \(c.mode) enc \(c.encryption)"
                if let i = c.integrity { out += " auth \(i)" }
                if let u = c.udpencap { out += " udpencap \(u)" }
                out += "\n    from \(c.local.joined(separator: ",")) to \(c.remote.joined(separator: ","))\n"
            }
        }
        // What reached no IKE SA (floods, strays, forgeries), by reason.
        for (reason, n) in dropped.sorted(by: { $0.key < $1.key }) { out += "dropped: \(n) \(reason)\n" }
        return out
    }
}

public enum IkedPrinter {
    /// The parsed policies, as encd-iked -nv prints them.
    public static func describe(_ c: IkedConfiguration) -> String {
        var out = "set \(c.settings.activeByDefault ? "active" : "passive")\n"
        out += "set \(c.settings.fragmentation ? "fragmentation" : "nofragmentation")\n"
        out += "set dpd_check_interval \(c.settings.dpdCheckInterval)\n"
        for p in c.policies {
            var line = "ikev2 \"\(p.name)\" \(p.active ? "active" : "passive") \(p.mode.rawValue)\(p.forceNATT ? " natt" : "") esp"
            for (l, r) in zip(p.localSelectors, p.remoteSelectors) {
                line += " from \(l.prefixes.map(\.description).joined(separator: ",")) to \(r.prefixes.map(\.description).joined(separator: ","))"
            }
            if let l = p.local { line += " local \(l)" }
            line += " peer \(p.peer?.description ?? "any")"
            for prop in p.ikeProposals { line += " \\\n\tikesa " + transforms(prop) }
            for prop in p.childProposals { line += " \\\n\tchildsa " + transforms(prop) }
            if let id = p.localID { line += " \\\n\tsrcid \(quoted(id))" }
            if let id = p.peerID { line += " dstid \(quoted(id))" }
            line += " \\\n\tikelifetime \(p.ikeLifetimeSeconds) lifetime \(p.childLifetimeSeconds) bytes \(p.childLifetimeBytes) "
            switch p.authentication {
            case .psk: line += "psk (not shown)"
            case .signature(nil): line += "(certificate, any signature method)"
            case .signature(let m?): line += [1: "rsa", 9: "ecdsa256", 10: "ecdsa384", 14: "rfc7427"][m] ?? "method \(m)"
            }
            out += line + "\n"
        }
        return out
    }

    /// An identity as srcid/dstid take it: a distinguished name in quotes.
    static func quoted(_ id: IKEIdentity) -> String { id.type == 9 ? "\"\(id)\"" : "\(id)" }

    static func transforms(_ p: IKEProposal) -> String {
        var parts: [String] = []
        for t in p.transforms {
            let bits = t.attributes.compactMap(\.keyLengthBits).first
            switch (t.type, t.id) {
            case (1, 12): parts.append("enc aes-\(bits ?? 0)")
            case (1, 20): parts.append("enc aes-\(bits ?? 0)-gcm")
            case (1, 28): parts.append("enc chacha20-poly1305")
            case (2, let id): parts.append("prf hmac-sha2-\([5: 256, 6: 384, 7: 512][Int(id)] ?? 0)")
            case (3, let id): parts.append("auth hmac-sha2-\([12: 256, 13: 384, 14: 512][Int(id)] ?? 0)")
            case (4, let id): parts.append("group " + ([14: "modp2048", 19: "ecp256", 20: "ecp384", 31: "curve25519"][Int(id)] ?? "\(id)"))
            case (5, let id): parts.append(id == 1 ? "esn" : "noesn")
            default: parts.append("transform \(t.type):\(t.id)")
            }
        }
        return parts.joined(separator: " ")
    }
}
