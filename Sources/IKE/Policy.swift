// One iked.conf(5) `ikev2` policy as the exchanges use it (policy.c's struct
// iked_policy): who the peer is, what it may negotiate, how it authenticates, and the
// traffic it may claim. IKEConfig's parser produces these; tests build them directly.

import Crypto
import EncCore
import IKECrypto

/// An identity (§3.5): ID_IPV4_ADDR 1, ID_FQDN 2, ID_RFC822_ADDR 3, ID_IPV6_ADDR 5, ID_KEY_ID 11.
public struct IKEIdentity: Equatable, Sendable, CustomStringConvertible {
    public var type: UInt8
    public var data: [UInt8]
    public init(type: UInt8, data: [UInt8]) {
        self.type = type
        self.data = data
    }
    public init(address: IPAddress) {
        self.init(type: address.family == .inet ? 1 : 5, data: address.bytes)
    }
    /// An address, an "@fqdn" or "fqdn", "user@fqdn", or a distinguished name
    /// ("/O=encd/CN=gw1" or "O=encd, CN=gw1": anything with "="), as iked.conf's
    /// srcid/dstid. A text with "=" that is no distinguished name stays an FQDN (the
    /// configuration refuses it).
    public init(_ text: String) {
        if text.contains("="), let dn = IKECertificate.distinguishedName(text: text) {
            self.init(type: IKEIDType.derDN, data: dn)
        } else if let a = IPAddress(text) {
            self.init(address: a)
        } else if text.hasPrefix("@") {
            self.init(type: 2, data: Array(text.utf8.dropFirst()))
        } else if text.contains("@") {
            self.init(type: 3, data: Array(text.utf8))
        } else {
            self.init(type: 2, data: Array(text.utf8))
        }
    }
    /// The ID payload's body as AUTH signs it: type, three reserved bytes, data.
    var body: [UInt8] { [type, 0, 0, 0] + data }

    public var description: String {
        switch type {
        case 1 where data.count == 4, 5 where data.count == 16:
            return IPAddress(family: type == 1 ? .inet : .inet6, bytes: data)?.description ?? "?"
        case 2, 3: return String(decoding: data, as: UTF8.self)
        case IKEIDType.derDN: return IKECertificate.distinguishedName(der: data) ?? "DN " + Hex.encode(data)
        default: return "type \(type): " + Hex.encode(data)
        }
    }
}

extension IPAddress {
    init?(family: AddressFamily, bytes: [UInt8]) {
        guard bytes.count == (family == .inet ? 4 : 16) else { return nil }
        self = bytes.withUnsafeBytes { IPAddress(family: family, bytes: $0.baseAddress!) }
    }
}

/// How a policy's IKE SAs authenticate (iked.conf's `psk`, `rsa`, `ecdsa256`,
/// `ecdsa384`, `rfc7427`, or nothing: any signature method).
public enum IKEAuthentication: Equatable, Sendable {
    case psk(SecretKey)
    /// A certificate and its key (§2.15, RFC 7427): `method` 1, 9, 10 or 14 is the AUTH
    /// method we sign with; nil signs with RFC 7427 (or the key's classic method when
    /// the peer announced no usable hash). Either way the peer may use any signature
    /// method; what it proves is the certificate's chain and the ID it names.
    case signature(method: UInt8?)

    public var isSignature: Bool { if case .signature = self { true } else { false } }
}

public enum IKEChildMode: String, Sendable, Equatable {
    case tunnel, transport
}

public struct IKEPolicy: Sendable, Equatable {
    public var name: String
    /// Initiates (at start: the IKE SA; CHILD SAs on acquire or at once unless childless).
    public var active: Bool
    public var mode: IKEChildMode = .tunnel
    /// `natt`: UDP-encapsulate (port 4500) even when NAT-D sees no NAT.
    public var forceNATT = false
    /// This gateway's address (nil: any of ours) and the peer's (nil: any, passive only).
    public var local: IPAddress?
    public var peer: IPAddress?
    /// Offered or accepted, in order of preference: protocol 1 (IKE) and 3 (ESP).
    public var ikeProposals: [IKEProposal]
    public var childProposals: [IKEProposal]
    /// Our side and the peer's side of the traffic (TSi/TSr as the initiator sends them).
    public var localSelectors: [IKETrafficSelector]
    public var remoteSelectors: [IKETrafficSelector]
    public var localID: IKEIdentity?
    /// The identity the peer must prove; nil accepts what it proves (with the PSK, or a
    /// certificate of a trusted CA).
    public var peerID: IKEIdentity?
    public var authentication: IKEAuthentication
    /// The pre-shared key, nil for certificates.
    public var psk: SecretKey? { if case .psk(let k) = authentication { k } else { nil } }
    /// CHILD SA lifetime (iked: 3 h and 512 MB), soft at a random 85-95 %.
    public var childLifetimeSeconds: UInt64 = 3 * 3600
    public var childLifetimeBytes: UInt64 = 512 << 20
    /// IKE SA lifetime (rekeyed at a random 85-95 %).
    public var ikeLifetimeSeconds: UInt64 = 4 * 3600

    public init(name: String, active: Bool, local: IPAddress?, peer: IPAddress?, ikeProposals: [IKEProposal],
                childProposals: [IKEProposal], localSelectors: [IKETrafficSelector], remoteSelectors: [IKETrafficSelector],
                authentication: IKEAuthentication) {
        self.name = name
        self.active = active
        self.local = local
        self.peer = peer
        self.ikeProposals = ikeProposals
        self.childProposals = childProposals
        self.localSelectors = localSelectors
        self.remoteSelectors = remoteSelectors
        self.authentication = authentication
    }

    public init(name: String, active: Bool, local: IPAddress?, peer: IPAddress?, ikeProposals: [IKEProposal],
                childProposals: [IKEProposal], localSelectors: [IKETrafficSelector], remoteSelectors: [IKETrafficSelector],
                psk: SecretKey) {
        self.init(name: name, active: active, local: local, peer: peer, ikeProposals: ikeProposals, childProposals: childProposals,
                  localSelectors: localSelectors, remoteSelectors: remoteSelectors, authentication: .psk(psk))
    }
}

extension IKETrafficSelector {
    /// The selector of an address prefix, any protocol and port.
    public init(prefix: IPPrefix, ipProtocol: UInt8 = 0, port: UInt16? = nil) {
        let first = prefix.address.masked(prefix.length)
        let bits = prefix.family.bitCount
        var last = first
        if prefix.length < bits {
            // Host bits all ones: hi covers bits 0-63, lo 64-127 (IPv4 in hi's top 32).
            let hostBits = bits - prefix.length
            if prefix.family == .inet {
                last.hi |= hostBits >= 32 ? 0xffff_ffff_0000_0000 : ((UInt64(1) << UInt64(hostBits)) - 1) << 32
            } else if hostBits >= 64 {
                last.lo = .max
                last.hi |= hostBits >= 128 ? .max : (UInt64(1) << UInt64(hostBits - 64)) - 1
            } else {
                last.lo |= (UInt64(1) << UInt64(hostBits)) - 1
            }
        }
        self.init(type: prefix.family == .inet ? 7 : 8, ipProtocol: ipProtocol, startPort: port ?? 0, endPort: port ?? 0xffff,
                  startAddress: first.bytes, endAddress: last.bytes)
    }

    /// Whether `other` lies within this selector (a responder's narrowing must).
    public func contains(_ other: IKETrafficSelector) -> Bool {
        IKETrafficSelectorNarrowing.intersection(self, other) == other
    }

    /// The prefixes covering the range exactly (a range need not be one prefix).
    public var prefixes: [IPPrefix] {
        let family: AddressFamily = type == 7 ? .inet : .inet6
        guard let start = IPAddress(family: family, bytes: startAddress),
              let end = IPAddress(family: family, bytes: endAddress), !(end < start) else { return [] }
        var out: [IPPrefix] = []
        var at = start
        while true {
            // The largest prefix starting at `at` that ends at or before `end`.
            var length = family.bitCount
            while length > 0 {
                let wider = IPPrefix(at, length: length - 1)
                guard wider.address == at, !(IKETrafficSelector(prefix: wider).lastAddress(family) > end) else { break }
                length -= 1
            }
            let p = IPPrefix(at, length: length)
            out.append(p)
            let last = IKETrafficSelector(prefix: p).lastAddress(family)
            guard last < end, let next = last.successor else { break }
            at = next
        }
        return out
    }

    func lastAddress(_ family: AddressFamily) -> IPAddress {
        IPAddress(family: family, bytes: endAddress) ?? .any(family)
    }
}

extension IPAddress {
    var successor: IPAddress? {
        var n = self
        if family == .inet {
            guard v4 != .max else { return nil }
            return IPAddress(v4: v4 + 1)
        }
        if n.lo == .max {
            guard n.hi != .max else { return nil }
            n.hi += 1; n.lo = 0
        } else {
            n.lo += 1
        }
        return n
    }
}
