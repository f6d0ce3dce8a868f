// The two steady-state loops encbench times. Stages of one iteration:
//   encrypt: copy the 1400-byte template into the reused PacketBuffer (memcpy) →
//            ESPOutput.process / AH.output (sequence number, padding, outer header,
//            cipher and ICV, counters)
//   decrypt: copy the next pre-protected packet of the ring into the reused buffer
//            (memcpy) → ESPInput.process / AH.input (SAD lookup, replay check, ICV,
//            decryption, replay commit, trailer, decapsulation, counters)
// Single-threaded, one SA per loop, like one encd worker. Everything a loop touches
// is built in `init`; `run` must allocate nothing, which main.swift checks.

import EncCore
import IPsec
#if canImport(Glibc)
import Glibc
#endif

protocol PacketLoop: AnyObject {
    /// Processes `count` packets; returns how many did not come out as expected.
    func run(_ count: Int) -> Int
}

struct SetupFailure: Error, CustomStringConvertible {
    let description: String
}

/// Builds the inner test packet: IPv4 UDP of exactly `size` bytes.
func makeTemplate(size: Int) -> [UInt8] {
    PacketBuilder.udp(source: BenchCase.innerSource, destination: BenchCase.innerDestination,
                      sourcePort: 40_000, destinationPort: 5201,
                      payload: (0..<(size - 28)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
}

/// Owned raw bytes, allocated once.
final class RawBytes {
    let base: UnsafeMutableRawPointer
    let count: Int
    init(_ bytes: [UInt8]) {
        count = bytes.count
        base = .allocate(byteCount: max(1, count), alignment: 16)
        bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }
    deinit { base.deallocate() }
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Outbound: protects the same template packet over and over with one SA.
final class EncryptLoop: PacketLoop {
    let sa: SecurityAssociation
    let template: RawBytes
    let buffer = PacketBuffer()
    let stats = CounterBlock<Counter>()

    init(spec: SASpec, template bytes: [UInt8]) throws {
        sa = try SecurityAssociation(spec, direction: .outbound, store: nil, now: 0)
        template = RawBytes(bytes)
        // Check once that the output is genuine: a fresh inbound SA must recover the packet.
        let inbound = try SecurityAssociation(spec, direction: .inbound, store: nil, now: 0)
        let probe = try EncryptLoop.protect(bytes, with: sa)
        guard try DecryptLoop.unprotect(probe, sad: SAD([inbound])) == bytes else {
            throw SetupFailure(description: "\(spec.key): protected packet did not decrypt to the original")
        }
    }

    func run(_ count: Int) -> Int {
        var failures = 0
        let isESP = sa.spec.proto == .esp
        for _ in 0..<count {
            buffer.load(template.buffer)
            let r = isESP ? ESPOutput.process(buffer, sa: sa, now: 1, stats: stats)
                          : AH.output(buffer, sa: sa, now: 1, stats: stats)
            if r != .send { failures += 1 }
        }
        return failures
    }

    /// One protected packet (setup only: returns an array).
    static func protect(_ packet: [UInt8], with sa: SecurityAssociation) throws -> [UInt8] {
        let b = PacketBuffer()
        b.load(packet)
        let stats = CounterBlock<Counter>()
        let r = sa.spec.proto == .esp ? ESPOutput.process(b, sa: sa, now: 1, stats: stats)
                                      : AH.output(b, sa: sa, now: 1, stats: stats)
        guard r == .send else { throw SetupFailure(description: "\(sa.key): output dropped the packet: \(r)") }
        return b.array
    }
}

/// Inbound: a ring of `ring` packets protected with sequence numbers 1...ring is
/// verified and decrypted in order; when the ring wraps, the replay window is reset
/// to empty (once per `ring` packets), so every packet is new to the window and
/// takes the full path.
final class DecryptLoop: PacketLoop {
    let inbound: SecurityAssociation
    let sad: SAD
    let ring: UnsafeMutableRawPointer
    let lengths: UnsafeMutablePointer<Int>
    let slots: Int
    let stride: Int
    var next = 0
    let buffer = PacketBuffer()
    let stats = CounterBlock<Counter>()

    init(spec: SASpec, template: [UInt8], ring slots: Int) throws {
        let outbound = try SecurityAssociation(spec, direction: .outbound, store: nil, now: 0)
        inbound = try SecurityAssociation(spec, direction: .inbound, store: nil, now: 0)
        sad = SAD([inbound])
        self.slots = slots
        stride = (template.count + outbound.maximumOverhead + 63) / 64 * 64
        ring = .allocate(byteCount: stride * slots, alignment: 64)
        lengths = .allocate(capacity: slots)
        for i in 0..<slots {
            let wire = try EncryptLoop.protect(template, with: outbound)
            guard wire.count <= stride else { throw SetupFailure(description: "ring slot too small") }
            wire.withUnsafeBytes { (ring + i * stride).copyMemory(from: $0.baseAddress!, byteCount: wire.count) }
            lengths[i] = wire.count
            // Check each slot once: it must decrypt to the template.
            guard try DecryptLoop.unprotect(wire, sad: sad) == template else {
                throw SetupFailure(description: "\(spec.key): ring packet \(i + 1) did not decrypt to the original")
            }
        }
        inbound.replay.reset(top: 0)
    }

    deinit {
        ring.deallocate()
        lengths.deallocate()
    }

    func run(_ count: Int) -> Int {
        var failures = 0
        let isESP = inbound.spec.proto == .esp
        for _ in 0..<count {
            if next == 0 { inbound.replay.reset(top: 0) }
            buffer.load(UnsafeRawBufferPointer(start: ring + next * stride, count: lengths[next]))
            let r = isESP ? ESPInput.process(buffer, sad: sad, now: 1, stats: stats)
                          : AH.input(buffer, sad: sad, now: 1, stats: stats)
            if case .decapsulated = r {} else { failures += 1 }
            next += 1
            if next == slots { next = 0 }
        }
        return failures
    }

    /// One unprotected packet (setup only: returns an array).
    static func unprotect(_ wire: [UInt8], sad: SAD) throws -> [UInt8] {
        let b = PacketBuffer()
        b.load(wire)
        let stats = CounterBlock<Counter>()
        let isESP = wire[9] == IPProtocol.esp
        let r = isESP ? ESPInput.process(b, sad: sad, now: 1, stats: stats) : AH.input(b, sad: sad, now: 1, stats: stats)
        guard case .decapsulated = r else { throw SetupFailure(description: "input dropped the packet: \(r)") }
        return b.array
    }
}
