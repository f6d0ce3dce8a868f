// The SK payload of an IKE SA (RFC 7296 §3.14, RFC 5282, RFC 7634): sealing a
// message's payloads with the sender's keys and opening a received one, as iked's
// ikev2_msg_encrypt/decrypt. Messages the original initiator sends use SK_ei/SK_ai,
// the original responder's SK_er/SK_ar, whoever starts the exchange.

import Crypto
import IKECrypto

struct IKEProtection {
    let encryption: IKEEncryption
    let keys: IKESAKeys
    let prf: IKEPRF

    /// The whole message: `header` (next payload and length set here) and the SK
    /// payload holding `payloads`. `iv` must be fresh for every message.
    func seal(_ header: IKEHeader, _ payloads: [IKEPayload], iv: [UInt8]) -> [UInt8]? {
        var w = IKEWriter()
        IKEPayloads.encode(payloads, into: &w)
        return seal(header, first: payloads.first?.type ?? IKEPayloadType.none, inner: w.bytes, iv: iv)
    }

    /// The same with the inner payload chain as bytes (`first`: its first payload's type).
    func seal(_ header: IKEHeader, first: UInt8, inner: [UInt8], iv: [UInt8], fragment: (number: UInt16, total: UInt16)? = nil) -> [UInt8]? {
        let headerBytes = IKEMessage(header: header, payloads: []).encode()
        let byInitiator = header.isInitiator
        switch encryption {
        case .aead(let cipher, _):
            return try? IKEAEAD.seal(header: headerBytes, firstInner: first, inner: inner, iv: Array(iv.prefix(IKEAEAD.ivLength)),
                                     key: byInitiator ? keys.ei : keys.er, cipher: cipher, fragment: fragment).get()
        case .cbc(_, let integrity):
            return try? IKECBC.seal(header: headerBytes, firstInner: first, inner: inner, iv: Array(iv.prefix(IKECBC.ivLength)),
                                    encryptionKey: byInitiator ? keys.ei : keys.er,
                                    integrityKey: byInitiator ? keys.ai : keys.ar, integrity: integrity, fragment: fragment).get()
        }
    }

    /// The message as RFC 7383 fragments of at most `size` bytes each (SKF payloads,
    /// fragment 1 naming the first inner payload), or nil when it fits whole.
    func sealFragments(_ header: IKEHeader, _ payloads: [IKEPayload], size: Int, iv: () -> [UInt8]) -> [[UInt8]]? {
        var w = IKEWriter()
        IKEPayloads.encode(payloads, into: &w)
        let icv: Int
        switch encryption {
        case .aead: icv = IKEAEAD.icvLength
        case .cbc(_, let i): icv = i.icvLength
        }
        // Header, SK(F) header, IV, ICV, a block of padding and the pad length byte.
        let overhead = IKEHeader.size + 8 + ivLength + icv + 16 + 1
        guard IKEHeader.size + 4 + ivLength + w.bytes.count + icv + 17 > size, size - overhead >= 64 else { return nil }
        let chunk = size - overhead
        let total = (w.bytes.count + chunk - 1) / chunk
        guard total <= IKEProtection.maxFragments else { return nil }
        var out: [[UInt8]] = []
        for n in 0..<total {
            let part = Array(w.bytes[(n * chunk)..<min(w.bytes.count, (n + 1) * chunk)])
            guard let m = seal(header, first: n == 0 ? (payloads.first?.type ?? 0) : 0, inner: part, iv: iv(),
                               fragment: (UInt16(n + 1), UInt16(total))) else { return nil }
            out.append(m)
        }
        return out
    }

    /// Reassembly refuses more fragments than this (RFC 7383 §2.6: bounded memory).
    static let maxFragments = 64

    /// One received fragment: its number, total, first inner type and plaintext.
    func openFragment(_ bytes: [UInt8], _ message: IKEMessage) -> (number: UInt16, total: UInt16, first: UInt8, plain: [UInt8])? {
        guard message.payloads.count == 1, case .encryptedFragment(let first, let number, let total, _) = message.payloads[0].body,
              number >= 1, number <= total, Int(total) <= IKEProtection.maxFragments,
              case .success(let plain) = openBody(bytes, message.header, headerLength: 8) else { return nil }
        return (number, total, first, plain)
    }

    /// The payloads inside a received message's SK payload (which must come first: the
    /// exchanges encd-iked runs put nothing before it), or why not.
    func open(_ bytes: [UInt8], _ message: IKEMessage) -> Result<[IKEPayload], IKEDecodeError> {
        guard message.payloads.count == 1, case .encrypted(let first, _) = message.payloads[0].body else {
            return .failure(.malformed("no SK payload"))
        }
        guard case .success(let inner) = openBody(bytes, message.header, headerLength: 4) else {
            return .failure(.malformed("SK payload does not verify"))
        }
        return IKEPayloads.decode(inner, first: first)
    }

    /// Verifies and decrypts the SK (`headerLength` 4) or SKF (8) payload that follows
    /// the IKE header, with the keys of whoever sent it (the header's I flag).
    func openBody(_ bytes: [UInt8], _ header: IKEHeader, headerLength: Int) -> Result<[UInt8], IKECryptoError> {
        let length = Int(bytes[24]) << 24 | Int(bytes[25]) << 16 | Int(bytes[26]) << 8 | Int(bytes[27])
        let whole = Array(bytes.prefix(length))
        let byInitiator = header.isInitiator
        switch encryption {
        case .aead(let cipher, _):
            return IKEAEAD.open(message: whole, bodyOffset: IKEHeader.size + headerLength, key: byInitiator ? keys.ei : keys.er, cipher: cipher)
        case .cbc(_, let integrity):
            return IKECBC.open(message: whole, bodyOffset: IKEHeader.size + headerLength, encryptionKey: byInitiator ? keys.ei : keys.er,
                               integrityKey: byInitiator ? keys.ai : keys.ar, integrity: integrity)
        }
    }

    /// How many bytes an IV takes (drawn per message).
    var ivLength: Int {
        if case .cbc = encryption { return IKECBC.ivLength }
        return IKEAEAD.ivLength
    }
}
