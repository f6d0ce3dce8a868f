import Crypto
import EncCore
@testable import IPsec

/// Deterministic key material of `bits` bits (tests only).
func testKey(bits: Int, seed: UInt8) -> SecretKey? {
    guard bits > 0 else { return nil }
    return SecretKey((0..<(bits / 8)).map { UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ $0 &* 7 &+ 1) })
}

let hostA4 = IPAddress("192.0.2.1")!, hostB4 = IPAddress("192.0.2.2")!
let hostA6 = IPAddress("2001:db8::1")!, hostB6 = IPAddress("2001:db8::2")!
let netA4 = IPAddress("198.18.1.10")!, netB4 = IPAddress("198.18.2.20")!
let netA6 = IPAddress("2001:db8:a::10")!, netB6 = IPAddress("2001:db8:b::20")!

/// A sender's outbound SA and the receiver's inbound copy of the same SA.
struct SAPair {
    let spec: SASpec
    let out: SecurityAssociation
    let inbound: SecurityAssociation
    var sad: SAD
    let txStats = CounterBlock<Counter>()
    let rxStats = CounterBlock<Counter>()

    init(_ spec: SASpec, store: SequenceStore? = nil) throws {
        self.spec = spec
        out = try SecurityAssociation(spec, direction: .outbound, store: store, now: 0)
        out.activate()
        inbound = try SecurityAssociation(spec, direction: .inbound, store: nil, now: 0)
        sad = SAD([inbound])
    }

    static func esp(_ enc: String, auth: String? = "hmac-sha2-256", mode: IPsecMode = .tunnel,
                    from: IPAddress = hostA4, to: IPAddress = hostB4, spi: UInt32 = 0x1000,
                    esn: Bool = false, replay: Int = 64, udp: UDPEncapsulation? = nil,
                    hard: Lifetime = Lifetime(), soft: Lifetime = Lifetime(),
                    store: SequenceStore? = nil) throws -> SAPair {
        let e = EncryptionAlgorithm.named(enc)!
        let ekBits = e.keyBits.upperBound + e.cipher.saltBits
        let i = e.cipher.isCombined ? nil : auth.flatMap { IntegrityAlgorithm.named($0) }
        let spec = SASpec(proto: .esp, mode: mode, source: from, destination: to, spi: spi, encapsulation: udp,
                          encryption: e, encryptionKey: testKey(bits: ekBits, seed: 1),
                          integrity: i, integrityKey: i.flatMap { testKey(bits: $0.keyBits, seed: 2) },
                          replayWindow: replay, extendedSequence: esn, softLifetime: soft, hardLifetime: hard)
        return try SAPair(spec, store: store)
    }

    static func ah(_ auth: String = "hmac-sha2-256", mode: IPsecMode = .tunnel, from: IPAddress = hostA4,
                   to: IPAddress = hostB4, spi: UInt32 = 0x2000, esn: Bool = false) throws -> SAPair {
        let i = IntegrityAlgorithm.named(auth)!
        let spec = SASpec(proto: .ah, mode: mode, source: from, destination: to, spi: spi,
                          integrity: i, integrityKey: testKey(bits: i.keyBits, seed: 3),
                          replayWindow: 64, extendedSequence: esn)
        return try SAPair(spec)
    }

    /// Protects `packet` with the outbound SA; returns the wire bytes or the drop.
    func protect(_ packet: [UInt8]) -> Result<[UInt8], Counter> {
        let b = PacketBuffer()
        b.load(packet)
        let r = spec.proto == .esp ? ESPOutput.process(b, sa: out, now: 1, stats: txStats)
                                   : AH.output(b, sa: out, now: 1, stats: txStats)
        switch r {
        case .send: return .success(b.array)
        case .dropped(let c): return .failure(c)
        }
    }

    /// Unprotects `wire` with the inbound SAD; returns the packet or the drop.
    func unprotect(_ wire: [UInt8]) -> Result<[UInt8], Counter> {
        let b = PacketBuffer()
        b.load(wire)
        let r = spec.proto == .esp ? ESPInput.process(b, sad: sad, now: 1, stats: rxStats)
                                   : AH.input(b, sad: sad, now: 1, stats: rxStats)
        switch r {
        case .decapsulated: return .success(b.array)
        case .notESP: return .failure(.malformedPacket)
        case .dropped(let c): return .failure(c)
        }
    }
}

func sample(_ src: IPAddress, _ dst: IPAddress, size: Int = 100, port: UInt16 = 5000) -> [UInt8] {
    PacketBuilder.udp(source: src, destination: dst, sourcePort: port, destinationPort: 53,
                      payload: (0..<size).map { UInt8(truncatingIfNeeded: $0) })
}

extension Result where Failure == Counter {
    var value: Success? { if case .success(let v) = self { return v } else { return nil } }
    var drop: Counter? { if case .failure(let c) = self { return c } else { return nil } }
}
extension Counter: Error {}
