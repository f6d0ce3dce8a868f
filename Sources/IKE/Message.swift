// IKEv2 messages as values (RFC 7296 §3), the first piece of encd-iked (issue #10):
// the role of iked's ikev2_pld.c. Pure: bytes in, values out, and back.
//
// Stages:
//   decode: header (§3.1) -> the chain of payloads, each behind its generic header
//           (§3.2), walked by "next payload" -> each known payload's body parsed
//           (§3.3-§3.14); an SK payload (§3.14) is kept as its encrypted bytes, to be
//           decoded with `IKEPayloads.decode(_:first:)` once decrypted
//   encode: the same in reverse, every length computed
// Every length read from the wire is checked before use; nothing traps on any input,
// and a message is refused whole (`IKEDecodeError`) rather than read in part. An
// unknown payload with the critical bit set refuses the message, naming the type
// (§2.5: the answer is UNSUPPORTED_CRITICAL_PAYLOAD); an unknown one without it is
// kept as raw bytes and skipped by the exchanges.

/// Exchange types (§3.1).
public enum IKEExchangeType {
    public static let ikeSAInit: UInt8 = 34, ikeAuth: UInt8 = 35, createChildSA: UInt8 = 36, informational: UInt8 = 37
}

/// Payload types (§3.2, RFC 7383 §2.5 for SKF).
public enum IKEPayloadType {
    public static let none: UInt8 = 0, sa: UInt8 = 33, ke: UInt8 = 34, idi: UInt8 = 35, idr: UInt8 = 36
    public static let cert: UInt8 = 37, certreq: UInt8 = 38, auth: UInt8 = 39, nonce: UInt8 = 40, notify: UInt8 = 41
    public static let delete: UInt8 = 42, vendorID: UInt8 = 43, tsi: UInt8 = 44, tsr: UInt8 = 45, sk: UInt8 = 46
    public static let cp: UInt8 = 47, eap: UInt8 = 48, skf: UInt8 = 53
}

/// The fixed header (§3.1).
public struct IKEHeader: Equatable, Sendable {
    public var initiatorSPI: UInt64
    public var responderSPI: UInt64
    /// Major version 2, minor 0.
    public var version: UInt8 = 0x20
    public var exchange: UInt8
    public var flags: UInt8
    public var messageID: UInt32

    public static let size = 28
    public static let initiatorFlag: UInt8 = 0x08, higherVersionFlag: UInt8 = 0x10, responseFlag: UInt8 = 0x20

    public init(initiatorSPI: UInt64, responderSPI: UInt64, exchange: UInt8, flags: UInt8, messageID: UInt32) {
        self.initiatorSPI = initiatorSPI
        self.responderSPI = responderSPI
        self.exchange = exchange
        self.flags = flags
        self.messageID = messageID
    }

    public var isInitiator: Bool { flags & Self.initiatorFlag != 0 }
    public var isResponse: Bool { flags & Self.responseFlag != 0 }
}

/// A transform attribute (§3.3.5): TV (AF set, 2-byte value) or TLV.
public struct IKETransformAttribute: Equatable, Sendable {
    public var type: UInt16
    public var value: [UInt8]
    /// Sent as TV (the value is then exactly 2 bytes).
    public var isTV: Bool
    public init(type: UInt16, value: [UInt8], isTV: Bool) {
        self.type = type
        self.value = value
        self.isTV = isTV
    }
    /// Key Length (type 14), always TV.
    public static func keyLength(_ bits: UInt16) -> IKETransformAttribute {
        IKETransformAttribute(type: 14, value: [UInt8(bits >> 8), UInt8(bits & 0xff)], isTV: true)
    }
    public var keyLengthBits: UInt16? { type == 14 && isTV ? UInt16(value[0]) << 8 | UInt16(value[1]) : nil }
}

/// A transform (§3.3.2): type 1 ENCR, 2 PRF, 3 INTEG, 4 DH (key exchange), 5 ESN.
public struct IKETransform: Equatable, Sendable {
    public var type: UInt8
    public var id: UInt16
    public var attributes: [IKETransformAttribute]
    public init(type: UInt8, id: UInt16, attributes: [IKETransformAttribute] = []) {
        self.type = type
        self.id = id
        self.attributes = attributes
    }
}

/// A proposal (§3.3.1): protocol 1 IKE, 2 AH, 3 ESP.
public struct IKEProposal: Equatable, Sendable {
    public var number: UInt8
    public var protocolID: UInt8
    public var spi: [UInt8]
    public var transforms: [IKETransform]
    public init(number: UInt8, protocolID: UInt8, spi: [UInt8], transforms: [IKETransform]) {
        self.number = number
        self.protocolID = protocolID
        self.spi = spi
        self.transforms = transforms
    }
}

/// One traffic selector (§3.13.1): type 7 IPv4 range, 8 IPv6 range.
public struct IKETrafficSelector: Equatable, Sendable {
    public var type: UInt8
    public var ipProtocol: UInt8
    public var startPort: UInt16
    public var endPort: UInt16
    public var startAddress: [UInt8]
    public var endAddress: [UInt8]
    public init(type: UInt8, ipProtocol: UInt8, startPort: UInt16, endPort: UInt16, startAddress: [UInt8], endAddress: [UInt8]) {
        self.type = type
        self.ipProtocol = ipProtocol
        self.startPort = startPort
        self.endPort = endPort
        self.startAddress = startAddress
        self.endAddress = endAddress
    }
}

/// A payload's contents, by type.
public enum IKEPayloadBody: Equatable, Sendable {
    case sa([IKEProposal])
    case keyExchange(group: UInt16, data: [UInt8])
    /// IDi or IDr (§3.5).
    case identification(type: UInt8, data: [UInt8])
    /// CERT or CERTREQ (§3.6, §3.7).
    case certificate(encoding: UInt8, data: [UInt8])
    case authentication(method: UInt8, data: [UInt8])
    case nonce([UInt8])
    case notify(protocolID: UInt8, type: UInt16, spi: [UInt8], data: [UInt8])
    case delete(protocolID: UInt8, spiSize: UInt8, spis: [[UInt8]])
    case vendorID([UInt8])
    /// TSi or TSr (§3.13).
    case trafficSelectors([IKETrafficSelector])
    /// SK (§3.14): the IV, the encrypted payloads, padding and ICV as received;
    /// `firstInner` is the type of the first payload inside.
    case encrypted(firstInner: UInt8, data: [UInt8])
    /// An SKF payload (RFC 7383 §2.5): one fragment of an SK payload, its number and
    /// the total (1-based), and its IV, ciphertext and ICV; `firstInner` is the first
    /// inner payload's type in fragment 1 and 0 in the others.
    case encryptedFragment(firstInner: UInt8, number: UInt16, total: UInt16, data: [UInt8])
    /// A payload this codec does not parse (CP, EAP, SKF, or unknown and not critical).
    case raw([UInt8])
}

public struct IKEPayload: Equatable, Sendable {
    public var type: UInt8
    public var critical: Bool
    public var body: IKEPayloadBody
    public init(type: UInt8, critical: Bool = false, body: IKEPayloadBody) {
        self.type = type
        self.critical = critical
        self.body = body
    }
}

public enum IKEDecodeError: Error, Equatable, Sendable {
    /// Fewer bytes than the header or a length field needs.
    case truncated(offset: Int)
    /// A length field that is too small for its structure or runs past its container.
    case badLength(offset: Int)
    /// Major version other than 2 (§1.5: INVALID_MAJOR_VERSION).
    case unsupportedVersion(UInt8)
    /// An unknown payload with the critical bit set (§2.5).
    case unsupportedCriticalPayload(UInt8)
    /// A structure whose fields contradict each other (what is named).
    case malformed(String)
}

public struct IKEMessage: Equatable, Sendable {
    public var header: IKEHeader
    public var payloads: [IKEPayload]

    public init(header: IKEHeader, payloads: [IKEPayload]) {
        self.header = header
        self.payloads = payloads
    }

    /// The message in `bytes` (one UDP payload, without the non-ESP marker).
    public static func decode(_ bytes: [UInt8]) -> Result<IKEMessage, IKEDecodeError> {
        var r = IKEReader(bytes)
        guard bytes.count >= IKEHeader.size else { return .failure(.truncated(offset: 0)) }
        let ispi = r.u64(0), rspi = r.u64(8)
        let next = bytes[16], version = bytes[17]
        guard version >> 4 == 2 else { return .failure(.unsupportedVersion(version)) }
        let length = Int(r.u32(24))
        guard length >= IKEHeader.size, length <= bytes.count else { return .failure(.badLength(offset: 24)) }
        var header = IKEHeader(initiatorSPI: ispi, responderSPI: rspi, exchange: bytes[18], flags: bytes[19], messageID: r.u32(20))
        header.version = version
        r.end = length
        return IKEPayloads.decode(&r, from: IKEHeader.size, first: next).map { IKEMessage(header: header, payloads: $0) }
    }

    /// The message's bytes, every length computed.
    public func encode() -> [UInt8] {
        var w = IKEWriter()
        w.u64(header.initiatorSPI); w.u64(header.responderSPI)
        w.u8(payloads.first?.type ?? IKEPayloadType.none)
        w.u8(header.version); w.u8(header.exchange); w.u8(header.flags); w.u32(header.messageID)
        w.u32(0)
        IKEPayloads.encode(payloads, into: &w)
        w.set32(24, UInt32(w.bytes.count))
        return w.bytes
    }
}

/// Payload chains: the body of a message, or the decrypted contents of an SK payload.
public enum IKEPayloads {
    /// The payloads of `bytes`, the first of type `first`.
    public static func decode(_ bytes: [UInt8], first: UInt8) -> Result<[IKEPayload], IKEDecodeError> {
        var r = IKEReader(bytes)
        return decode(&r, from: 0, first: first)
    }

    static func decode(_ r: inout IKEReader, from start: Int, first: UInt8) -> Result<[IKEPayload], IKEDecodeError> {
        var payloads: [IKEPayload] = []
        var at = start, type = first
        while type != IKEPayloadType.none {
            guard r.has(at, 4) else { return .failure(.truncated(offset: at)) }
            let next = r.u8(at), critical = r.u8(at + 1) & 0x80 != 0, length = Int(r.u16(at + 2))
            guard length >= 4, r.has(at, length) else { return .failure(.badLength(offset: at + 2)) }
            let body = Array(r.bytes[(at + 4)..<(at + length)])
            if type == IKEPayloadType.sk {
                // The SK payload is the last (§3.14); its "next payload" names the first inside.
                payloads.append(IKEPayload(type: type, critical: critical, body: .encrypted(firstInner: next, data: body)))
                return at + length == r.end ? .success(payloads) : .failure(.malformed("bytes after the SK payload"))
            }
            if type == IKEPayloadType.skf {
                // So is an SKF payload (RFC 7383 §2.5), after its fragment number and total.
                guard body.count >= 4 else { return .failure(.truncated(offset: at + 4)) }
                let number = UInt16(body[0]) << 8 | UInt16(body[1]), total = UInt16(body[2]) << 8 | UInt16(body[3])
                payloads.append(IKEPayload(type: type, critical: critical,
                                           body: .encryptedFragment(firstInner: next, number: number, total: total, data: Array(body[4...]))))
                return at + length == r.end ? .success(payloads) : .failure(.malformed("bytes after the SKF payload"))
            }
            switch parseBody(type, body) {
            case .success(let b): payloads.append(IKEPayload(type: type, critical: critical, body: b))
            case .failure(let e): return .failure(e)
            }
            if case .raw = payloads.last!.body, critical, !knownRaw.contains(type) {
                return .failure(.unsupportedCriticalPayload(type))
            }
            at += length
            type = next
        }
        return at == r.end ? .success(payloads) : .failure(.malformed("\(r.end - at) bytes after the last payload"))
    }

    /// Types kept as raw bytes though known (parsed by later stages if ever).
    static let knownRaw: Set<UInt8> = [IKEPayloadType.cp, IKEPayloadType.eap]

    static func parseBody(_ type: UInt8, _ b: [UInt8]) -> Result<IKEPayloadBody, IKEDecodeError> {
        var r = IKEReader(b)
        switch type {
        case IKEPayloadType.sa:
            return parseProposals(&r).map { .sa($0) }
        case IKEPayloadType.ke:
            guard b.count >= 4 else { return .failure(.truncated(offset: 0)) }
            return .success(.keyExchange(group: r.u16(0), data: Array(b[4...])))
        case IKEPayloadType.idi, IKEPayloadType.idr:
            guard b.count >= 4 else { return .failure(.truncated(offset: 0)) }
            return .success(.identification(type: b[0], data: Array(b[4...])))
        case IKEPayloadType.cert, IKEPayloadType.certreq:
            guard b.count >= 1 else { return .failure(.truncated(offset: 0)) }
            return .success(.certificate(encoding: b[0], data: Array(b[1...])))
        case IKEPayloadType.auth:
            guard b.count >= 4 else { return .failure(.truncated(offset: 0)) }
            return .success(.authentication(method: b[0], data: Array(b[4...])))
        case IKEPayloadType.nonce:
            return .success(.nonce(b))
        case IKEPayloadType.notify:
            guard b.count >= 4 else { return .failure(.truncated(offset: 0)) }
            let spiSize = Int(b[1])
            guard b.count >= 4 + spiSize else { return .failure(.badLength(offset: 1)) }
            return .success(.notify(protocolID: b[0], type: r.u16(2), spi: Array(b[4..<(4 + spiSize)]), data: Array(b[(4 + spiSize)...])))
        case IKEPayloadType.delete:
            guard b.count >= 4 else { return .failure(.truncated(offset: 0)) }
            let size = Int(b[1]), count = Int(r.u16(2))
            guard b.count == 4 + size * count else { return .failure(.badLength(offset: 2)) }
            return .success(.delete(protocolID: b[0], spiSize: b[1], spis: (0..<count).map { Array(b[(4 + $0 * size)..<(4 + ($0 + 1) * size)]) }))
        case IKEPayloadType.vendorID:
            return .success(.vendorID(b))
        case IKEPayloadType.tsi, IKEPayloadType.tsr:
            return parseSelectors(&r).map { .trafficSelectors($0) }
        default:
            return .success(.raw(b))
        }
    }

    static func parseProposals(_ r: inout IKEReader) -> Result<[IKEProposal], IKEDecodeError> {
        var proposals: [IKEProposal] = []
        var at = 0, more = true
        while more {
            guard r.has(at, 8) else { return .failure(.truncated(offset: at)) }
            let last = r.u8(at), length = Int(r.u16(at + 2))
            guard last == 0 || last == 2 else { return .failure(.malformed("proposal substructure type \(last)")) }
            guard length >= 8, r.has(at, length) else { return .failure(.badLength(offset: at + 2)) }
            let spiSize = Int(r.u8(at + 6)), count = Int(r.u8(at + 7))
            guard 8 + spiSize <= length else { return .failure(.badLength(offset: at + 6)) }
            var p = IKEProposal(number: r.u8(at + 4), protocolID: r.u8(at + 5), spi: Array(r.bytes[(at + 8)..<(at + 8 + spiSize)]), transforms: [])
            var t = at + 8 + spiSize
            for i in 0..<count {
                guard r.has(t, 8), t + 8 <= at + length else { return .failure(.truncated(offset: t)) }
                let tlast = r.u8(t), tlen = Int(r.u16(t + 2))
                guard tlast == (i + 1 == count ? 0 : 3) else { return .failure(.malformed("transform \(i + 1) of \(count) marked \(tlast)")) }
                guard tlen >= 8, t + tlen <= at + length else { return .failure(.badLength(offset: t + 2)) }
                var transform = IKETransform(type: r.u8(t + 4), id: r.u16(t + 6))
                var a = t + 8
                while a < t + tlen {
                    guard a + 4 <= t + tlen else { return .failure(.truncated(offset: a)) }
                    let word = r.u16(a)
                    if word & 0x8000 != 0 {
                        transform.attributes.append(IKETransformAttribute(type: word & 0x7fff, value: Array(r.bytes[(a + 2)..<(a + 4)]), isTV: true))
                        a += 4
                    } else {
                        let vlen = Int(r.u16(a + 2))
                        guard a + 4 + vlen <= t + tlen else { return .failure(.badLength(offset: a + 2)) }
                        transform.attributes.append(IKETransformAttribute(type: word, value: Array(r.bytes[(a + 4)..<(a + 4 + vlen)]), isTV: false))
                        a += 4 + vlen
                    }
                }
                p.transforms.append(transform)
                t += tlen
            }
            guard t == at + length else { return .failure(.malformed("proposal \(p.number): \(at + length - t) bytes after its transforms")) }
            proposals.append(p)
            at += length
            more = last == 2
        }
        guard at == r.end else { return .failure(.malformed("bytes after the last proposal")) }
        return .success(proposals)
    }

    static func parseSelectors(_ r: inout IKEReader) -> Result<[IKETrafficSelector], IKEDecodeError> {
        guard r.has(0, 4) else { return .failure(.truncated(offset: 0)) }
        let count = Int(r.u8(0))
        var at = 4
        var selectors: [IKETrafficSelector] = []
        for _ in 0..<count {
            guard r.has(at, 8) else { return .failure(.truncated(offset: at)) }
            let type = r.u8(at), length = Int(r.u16(at + 2))
            let addressSize = type == 7 ? 4 : type == 8 ? 16 : 0
            guard addressSize > 0 else { return .failure(.malformed("traffic selector type \(type)")) }
            guard length == 8 + 2 * addressSize, r.has(at, length) else { return .failure(.badLength(offset: at + 2)) }
            selectors.append(IKETrafficSelector(type: type, ipProtocol: r.u8(at + 1), startPort: r.u16(at + 4), endPort: r.u16(at + 6),
                                                startAddress: Array(r.bytes[(at + 8)..<(at + 8 + addressSize)]),
                                                endAddress: Array(r.bytes[(at + 8 + addressSize)..<(at + length)])))
            at += length
        }
        guard at == r.end else { return .failure(.malformed("bytes after the last traffic selector")) }
        return .success(selectors)
    }

    /// Appends the payload chain; each generic header names the next payload's type.
    public static func encode(_ payloads: [IKEPayload], into w: inout IKEWriter) {
        for (i, p) in payloads.enumerated() {
            let start = w.bytes.count
            var next = i + 1 < payloads.count ? payloads[i + 1].type : IKEPayloadType.none
            if case .encrypted(let firstInner, _) = p.body { next = firstInner }
            if case .encryptedFragment(let firstInner, _, _, _) = p.body { next = firstInner }
            w.u8(next); w.u8(p.critical ? 0x80 : 0); w.u16(0)
            encodeBody(p.body, into: &w)
            w.set16(start + 2, UInt16(truncatingIfNeeded: w.bytes.count - start))
        }
    }

    static func encodeBody(_ body: IKEPayloadBody, into w: inout IKEWriter) {
        switch body {
        case .sa(let proposals):
            for (i, p) in proposals.enumerated() {
                let start = w.bytes.count
                w.u8(i + 1 < proposals.count ? 2 : 0); w.u8(0); w.u16(0)
                w.u8(p.number); w.u8(p.protocolID); w.u8(UInt8(truncatingIfNeeded: p.spi.count)); w.u8(UInt8(truncatingIfNeeded: p.transforms.count))
                w.bytes += p.spi
                for (j, t) in p.transforms.enumerated() {
                    let ts = w.bytes.count
                    w.u8(j + 1 < p.transforms.count ? 3 : 0); w.u8(0); w.u16(0)
                    w.u8(t.type); w.u8(0); w.u16(t.id)
                    for a in t.attributes {
                        if a.isTV {
                            w.u16(a.type | 0x8000); w.bytes += a.value.prefix(2)
                        } else {
                            w.u16(a.type); w.u16(UInt16(truncatingIfNeeded: a.value.count)); w.bytes += a.value
                        }
                    }
                    w.set16(ts + 2, UInt16(truncatingIfNeeded: w.bytes.count - ts))
                }
                w.set16(start + 2, UInt16(truncatingIfNeeded: w.bytes.count - start))
            }
        case .keyExchange(let group, let data):
            w.u16(group); w.u16(0); w.bytes += data
        case .identification(let type, let data):
            w.u8(type); w.u8(0); w.u16(0); w.bytes += data
        case .certificate(let encoding, let data):
            w.u8(encoding); w.bytes += data
        case .authentication(let method, let data):
            w.u8(method); w.u8(0); w.u16(0); w.bytes += data
        case .nonce(let data), .vendorID(let data), .raw(let data), .encrypted(_, let data):
            w.bytes += data
        case .encryptedFragment(_, let number, let total, let data):
            w.u16(number); w.u16(total); w.bytes += data
        case .notify(let protocolID, let type, let spi, let data):
            w.u8(protocolID); w.u8(UInt8(truncatingIfNeeded: spi.count)); w.u16(type); w.bytes += spi; w.bytes += data
        case .delete(let protocolID, let spiSize, let spis):
            w.u8(protocolID); w.u8(spiSize); w.u16(UInt16(truncatingIfNeeded: spis.count)); for s in spis { w.bytes += s }
        case .trafficSelectors(let selectors):
            w.u8(UInt8(truncatingIfNeeded: selectors.count)); w.u8(0); w.u16(0)
            for s in selectors {
                w.u8(s.type); w.u8(s.ipProtocol); w.u16(UInt16(truncatingIfNeeded: 8 + s.startAddress.count + s.endAddress.count))
                w.u16(s.startPort); w.u16(s.endPort); w.bytes += s.startAddress; w.bytes += s.endAddress
            }
        }
    }
}

/// Big-endian reads within `end` (the message's own length, which may be shorter than
/// the datagram); callers check `has` first.
struct IKEReader {
    let bytes: [UInt8]
    var end: Int
    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        end = bytes.count
    }
    func has(_ at: Int, _ n: Int) -> Bool { at >= 0 && n >= 0 && at <= end && n <= end - at }
    func u8(_ at: Int) -> UInt8 { bytes[at] }
    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) << 32 | UInt64(u32(at + 4)) }
}

/// Big-endian writes.
public struct IKEWriter {
    public var bytes: [UInt8] = []
    public init() {}
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xff)] }
    mutating func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xffff)) }
    mutating func u64(_ v: UInt64) { u32(UInt32(v >> 32)); u32(UInt32(v & 0xffff_ffff)) }
    mutating func set16(_ at: Int, _ v: UInt16) { bytes[at] = UInt8(v >> 8); bytes[at + 1] = UInt8(v & 0xff) }
    mutating func set32(_ at: Int, _ v: UInt32) { set16(at, UInt16(v >> 16)); set16(at + 2, UInt16(v & 0xffff)) }
}
