// Helpers shared by the Crypto tests: hex fixtures and one-shot runs through the
// same CipherContext and Authenticator objects the ESP transform uses.

import EncCore
@testable import Crypto

/// Bytes from a hex fixture (white space allowed); a malformed fixture is a test bug.
func hex(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text) else { preconditionFailure("bad hex fixture: \(text)") }
    return bytes
}

func key(_ text: String) -> SecretKey { SecretKey(hex(text)) }

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

func repeated(_ byte: UInt8, _ count: Int) -> [UInt8] { [UInt8](repeating: byte, count: count) }

/// One message through a CipherContext: set `iv`, feed `aad`, transform `data` in place.
/// For AEAD modes the tag is returned (encryption) or checked against `tag` (decryption).
struct CipherRun {
    var output: [UInt8]
    var tag: [UInt8]
    var finished: Bool
}

func runCipher(_ name: String, key: [UInt8], iv: [UInt8], aad: [UInt8] = [], _ data: [UInt8],
               encrypt: Bool = true, tag expected: [UInt8]? = nil, tagLength: Int = 0) throws -> CipherRun {
    let ctx = try key.withUnsafeBytes { try CipherContext(name: name, key: $0, encrypt: encrypt) }
    var out = data
    var tag = [UInt8](repeating: 0, count: tagLength)
    var finished = false
    iv.withUnsafeBytes { ivp in
        out.withUnsafeMutableBytes { o in
            var ok = ctx.start(iv: ivp.baseAddress!)
            ok = ok && aad.withUnsafeBytes { ctx.authenticate($0.baseAddress ?? ivp.baseAddress!, count: $0.count) }
            ok = ok && (o.count == 0 || ctx.transform(o.baseAddress!, count: o.count))
            if let expected { ok = ok && expected.withUnsafeBytes { ctx.expectTag($0.baseAddress!, count: $0.count) } }
            ok = ok && ctx.finish()
            if tagLength > 0 && encrypt { ok = ok && tag.withUnsafeMutableBytes { ctx.tag(into: $0.baseAddress!, count: tagLength) } }
            finished = ok
        }
    }
    return CipherRun(output: out, tag: tag, finished: finished)
}

/// ECB through the CBC context: each block starts afresh from a zero IV, which makes
/// CBC's output E(K, P) block by block. The single-block published vectors of 3DES,
/// Blowfish and CAST-128 are ECB.
func ecbThroughCBC(_ name: String, key: [UInt8], _ data: [UInt8], blockSize: Int = 8) throws -> [UInt8] {
    let ctx = try key.withUnsafeBytes { try CipherContext(name: name, key: $0, encrypt: true) }
    var out = data
    let zero = [UInt8](repeating: 0, count: blockSize)
    var ok = true
    zero.withUnsafeBytes { z in
        out.withUnsafeMutableBytes { o in
            for off in stride(from: 0, to: o.count, by: blockSize) {
                ok = ok && ctx.start(iv: z.baseAddress!) && ctx.transform(o.baseAddress! + off, count: blockSize)
            }
        }
    }
    precondition(ok, "cipher context failed")
    return out
}

/// HMAC of `data` through an Authenticator truncated to `length` bytes.
func hmac(_ digest: Digest, key: [UInt8], _ data: [UInt8], length: Int) throws -> [UInt8] {
    let auth = try Authenticator(digest: digest, key: SecretKey(key), icvLength: length)
    auth.reset()
    data.withUnsafeBytes { auth.update($0) }
    var out = [UInt8](repeating: 0, count: length)
    let ok = out.withUnsafeMutableBytes { auth.finish(into: $0.baseAddress!) }
    precondition(ok, "HMAC failed")
    return out
}

// MARK: ESP buffers

/// An ESP buffer as the IPsec layer hands it over: SPI, sequence low word, room
/// for the IV, the payload, room for the ICV.
func espBuffer(spi: UInt32, sequence: UInt64, transform: ESPTransform, payload: [UInt8]) -> [UInt8] {
    var b = [UInt8]()
    b += withUnsafeBytes(of: spi.bigEndian, Array.init)
    b += withUnsafeBytes(of: UInt32(truncatingIfNeeded: sequence).bigEndian, Array.init)
    b += [UInt8](repeating: 0, count: transform.ivLength)
    b += payload
    b += [UInt8](repeating: 0, count: transform.icvLength)
    return b
}

/// A complete ESP payload: `dataLength` bytes of data, padding 1, 2, 3, …, pad length
/// and next header (4 = IPv4), aligned to `alignment` (RFC 4303 §2.4).
func espPayload(dataLength: Int, alignment: Int, seed: UInt8 = 0) -> [UInt8] {
    var p = (0..<dataLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    let padLength = (alignment - (dataLength + 2) % alignment) % alignment
    p += (0..<padLength).map { UInt8($0 + 1) }
    p += [UInt8(padLength), 4]
    return p
}

extension ESPTransform {
    func seal(_ buffer: inout [UInt8], sequence: UInt64, esn: Bool) -> Bool {
        buffer.withUnsafeMutableBytes { seal($0, sequence: sequence, esn: esn) }
    }

    func open(_ buffer: inout [UInt8], sequenceHigh: UInt32, esn: Bool) -> CryptoVerdict {
        buffer.withUnsafeMutableBytes { open($0, sequenceHigh: sequenceHigh, esn: esn) }
    }

    /// The payload region of an ESP buffer.
    func payload(of buffer: [UInt8]) -> [UInt8] {
        Array(buffer[(8 + ivLength)..<(buffer.count - icvLength)])
    }
}
