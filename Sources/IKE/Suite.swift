// What a negotiated proposal means (RFC 7296 §3.3.2, RFC 8247, RFC 8221): the IKE SA's
// SK payload cipher, PRF and group, and a CHILD SA's ESP algorithms as encd names them
// (ipsec.conf(5) names and key lengths, the salt counted in an AEAD's key). A proposal
// naming anything else is refused here, so the exchanges only ever see suites they can
// run.

import Crypto
import IKECrypto

/// Transform IDs (IANA "IKEv2 Parameters").
public enum IKETransformID {
    public static let encr: UInt8 = 1, prf: UInt8 = 2, integ: UInt8 = 3, dh: UInt8 = 4, esn: UInt8 = 5
    public static let aesCBC: UInt16 = 12, aesGCM16: UInt16 = 20, chacha20Poly1305: UInt16 = 28
}

/// The SK payload's protection.
public enum IKEEncryption: Equatable, Sendable {
    case aead(IKEAEADCipher, keyBytes: Int)
    case cbc(keyBytes: Int, integrity: IKEIntegrity)

    /// SK_e length: an AEAD's key plus its 4-byte salt (RFC 5282 §7.1, RFC 7634 §2).
    var encryptionKeyLength: Int {
        switch self {
        case .aead(_, let n): return n + 4
        case .cbc(let n, _): return n
        }
    }
    var integrityKeyLength: Int {
        if case .cbc(_, let i) = self { return i.keyLength }
        return 0
    }
}

/// An IKE SA's algorithms, from the proposal both sides agreed on.
public struct IKESuite: Equatable, Sendable {
    public var encryption: IKEEncryption
    public var prf: IKEPRF
    public var group: IKEGroup

    /// Nil when the proposal is not exactly one supported transform of ENCR, PRF and DH
    /// (and INTEG for a non-AEAD cipher).
    public init?(_ p: IKEProposal) {
        guard p.protocolID == 1,
              let encr = p.transforms.first(where: { $0.type == IKETransformID.encr }),
              let prfT = p.transforms.first(where: { $0.type == IKETransformID.prf }), let prf = IKEPRF(rawValue: prfT.id),
              let dh = p.transforms.first(where: { $0.type == IKETransformID.dh }), let group = IKEGroup(rawValue: dh.id) else { return nil }
        let integ = p.transforms.first(where: { $0.type == IKETransformID.integ })
        let bits = encr.attributes.compactMap(\.keyLengthBits).first
        switch encr.id {
        case IKETransformID.aesGCM16:
            guard integ == nil, let bits, bits == 128 || bits == 256 else { return nil }
            encryption = .aead(.aesGCM, keyBytes: Int(bits) / 8)
        case IKETransformID.chacha20Poly1305:
            guard integ == nil, bits == nil else { return nil }
            encryption = .aead(.chacha20Poly1305, keyBytes: 32)
        case IKETransformID.aesCBC:
            guard let integ, let i = IKEIntegrity(rawValue: integ.id), let bits, bits == 128 || bits == 256 else { return nil }
            encryption = .cbc(keyBytes: Int(bits) / 8, integrity: i)
        default: return nil
        }
        self.prf = prf
        self.group = group
    }
}

/// A CHILD SA's ESP algorithms as encd's `add` takes them.
public struct IKEChildSuite: Equatable, Sendable {
    /// ipsec.conf(5) cipher name ("aes-128-gcm", "aes-256", "chacha20-poly1305").
    public var encryption: String
    /// Key material per direction, in bytes (an AEAD's salt included).
    public var encryptionKeyLength: Int
    /// "hmac-sha2-256" and so on for a non-AEAD cipher.
    public var integrity: String?
    public var integrityKeyLength: Int
    public var extendedSequence: Bool
    /// The DH group for PFS, when the proposal names one (CREATE_CHILD_SA).
    public var group: IKEGroup?

    public init?(_ p: IKEProposal) {
        guard p.protocolID == 3, let encr = p.transforms.first(where: { $0.type == IKETransformID.encr }) else { return nil }
        let integ = p.transforms.first(where: { $0.type == IKETransformID.integ })
        let bits = encr.attributes.compactMap(\.keyLengthBits).first
        switch encr.id {
        case IKETransformID.aesGCM16:
            guard integ == nil, let bits, bits == 128 || bits == 256 else { return nil }
            encryption = "aes-\(bits)-gcm"; encryptionKeyLength = Int(bits) / 8 + 4
        case IKETransformID.chacha20Poly1305:
            guard integ == nil, bits == nil else { return nil }
            encryption = "chacha20-poly1305"; encryptionKeyLength = 36
        case IKETransformID.aesCBC:
            guard let bits, bits == 128 || bits == 256 else { return nil }
            encryption = "aes-\(bits)"; encryptionKeyLength = Int(bits) / 8
        default: return nil
        }
        if encr.id == IKETransformID.aesCBC {
            guard let integ, let i = IKEIntegrity(rawValue: integ.id) else { return nil }
            integrity = ["hmac-sha2-256", "hmac-sha2-384", "hmac-sha2-512"][Int(i.rawValue) - 12]
            integrityKeyLength = i.keyLength
        } else {
            integrity = nil; integrityKeyLength = 0
        }
        switch p.transforms.first(where: { $0.type == IKETransformID.esn })?.id {
        case nil, 0: extendedSequence = false
        case 1: extendedSequence = true
        default: return nil
        }
        if let dh = p.transforms.first(where: { $0.type == IKETransformID.dh }), dh.id != 0 {
            guard let g = IKEGroup(rawValue: dh.id) else { return nil }
            group = g
        } else {
            group = nil
        }
    }
}
