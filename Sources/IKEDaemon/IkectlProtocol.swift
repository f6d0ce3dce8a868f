// ikectl <-> encd-iked: requests and answers on encd-iked's UNIX socket, framed as on
// encd's control socket (4-byte length, JSON). Never carries a key.

import IKE

public enum IkectlProtocol {
    public static let defaultSocket = "/run/encd-iked/encd-iked.sock"
}

public struct IkectlRequest: Codable, Sendable {
    /// "show" or "reload".
    public var command: String
    public init(command: String) { self.command = command }
}

public struct IkectlChild: Codable, Sendable, Equatable {
    public var inboundSPI: String
    public var outboundSPI: String
    public var encryption: String
    public var integrity: String?
    public var mode: String
    public var udpencap: String?
    public var local: [String]
    public var remote: [String]
}

public struct IkectlSA: Codable, Sendable, Equatable {
    public var policy: String
    public var role: String
    public var state: String
    public var initiatorSPI: String
    public var responderSPI: String
    public var local: String
    public var remote: String
    public var peerID: String?
    /// The subject of the certificate the peer authenticated with.
    public var certificate: String?
    public var nat: String?
    public var suite: String?
    /// Seconds since it was established.
    public var age: Int?
    public var children: [IkectlChild]

    init(_ s: IKESession, now: Double) {
        policy = s.policy.name
        role = s.isInitiator ? "initiator" : "responder"
        state = s.state.rawValue
        initiatorSPI = hex64(s.initiatorSPI)
        responderSPI = hex64(s.responderSPI)
        local = s.local.description
        remote = s.remote.description
        peerID = s.peerID?.description
        certificate = s.peerCertificate
        nat = s.natLocal ? "local" : s.natRemote ? "remote" : nil
        suite = s.suite.map(IkectlSA.describe)
        age = s.establishedAt.map { Int(now - $0) }
        children = s.children.map { c in
            IkectlChild(inboundSPI: "0x" + hex32(c.inboundSPI), outboundSPI: "0x" + hex32(c.outboundSPI),
                        encryption: c.suite.encryption, integrity: c.suite.integrity, mode: c.mode.rawValue,
                        udpencap: c.udpEncapsulation.map { "\($0.local) -> \($0.peer)" },
                        local: c.localSelectors.flatMap(\.prefixes).map(\.description),
                        remote: c.remoteSelectors.flatMap(\.prefixes).map(\.description))
        }
    }

    static func describe(_ s: IKESuite) -> String {
        let enc: String
        switch s.encryption {
        case .aead(.aesGCM, let n): enc = "aes-\(n * 8)-gcm"
        case .aead(.chacha20Poly1305, _): enc = "chacha20-poly1305"
        case .cbc(let n, let i): enc = "aes-\(n * 8) " + ["hmac-sha2-256", "hmac-sha2-384", "hmac-sha2-512"][Int(i.rawValue) - 12]
        }
        let prf = ["hmac-sha2-256", "hmac-sha2-384", "hmac-sha2-512"][Int(s.prf.rawValue) - 5]
        let group = [14: "modp2048", 19: "ecp256", 20: "ecp384", 31: "curve25519"][Int(s.group.rawValue)] ?? "\(s.group.rawValue)"
        return "\(enc) prf \(prf) group \(group)"
    }
}

public struct IkectlResponse: Codable, Sendable {
    public var ok: Bool
    public var error: String?
    public var sas: [IkectlSA]?
    /// Datagrams dropped before any IKE SA took them, by reason.
    public var dropped: [String: UInt64]?
    public init(ok: Bool, error: String? = nil) {
        self.ok = ok
        self.error = error
    }
}
