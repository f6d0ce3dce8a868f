// Fuzzes the inbound packet path: any bytes as a packet arriving at the IPsec input
// queue (outer IPv4/IPv6, ESP, AH, ESP-in-UDP), processed by the stages a real packet
// meets — InputStage (ESP or AH input against a SAD with AES-GCM, AES-CBC+HMAC,
// ChaCha20-Poly1305, UDP-encapsulated and AH SAs), then, for what comes out into enc0,
// the inbound check and [X] (SPDStage) — and the same bytes as cleartext at [X] and
// at the cleartext check. Half of the inputs are first sealed with a real SA (the
// first byte chooses which), so the fuzzer also reaches decryption, padding, the
// replay window and decapsulation of inner packets with extension headers and
// fragments. Contract: every packet gets a verdict and a counter, nothing traps.

import FuzzDriver
import Crypto
import Daemon
import EncCore
import Foundation
import IPsec
import Kernel

final class Rig: @unchecked Sendable {
    let box = SnapshotBox()
    let context: StageContext
    let stats = CounterBlock<Counter>()
    let device = LastFrame()
    let senders: [SecurityAssociation]
    static let gw1 = IPAddress("192.0.2.1")!, gw2 = IPAddress("192.0.2.2")!
    static let gw1v6 = IPAddress("2001:db8::1")!, gw2v6 = IPAddress("2001:db8::2")!

    init() {
        func key(_ n: Int, _ b: UInt8) -> SecretKey { SecretKey([UInt8](repeating: b, count: n)) }
        func spec(_ proto: IPsecProtocol, _ src: IPAddress, _ dst: IPAddress, _ spi: UInt32, _ enc: String?, _ auth: String?,
                  encKey: Int, udp: Bool = false, mode: IPsecMode = .tunnel, b: UInt8) -> SASpec {
            SASpec(proto: proto, mode: mode, source: src, destination: dst, spi: spi,
                   encapsulation: udp ? UDPEncapsulation() : nil,
                   encryption: enc.flatMap { EncryptionAlgorithm.named($0) }, encryptionKey: enc == nil ? nil : key(encKey, b),
                   integrity: auth.flatMap { IntegrityAlgorithm.named($0) }, integrityKey: auth == nil ? nil : key(32, b &+ 1),
                   replayWindow: 64, extendedSequence: spi & 1 == 1)
        }
        let specs = [
            spec(.esp, Rig.gw2, Rig.gw1, 0x1000, "aes-128-gcm", nil, encKey: 20, b: 0x10),
            spec(.esp, Rig.gw2, Rig.gw1, 0x1001, "aes-128", "hmac-sha2-256", encKey: 16, mode: .transport, b: 0x20),
            spec(.esp, Rig.gw2, Rig.gw1, 0x1002, "chacha20-poly1305", nil, encKey: 36, udp: true, b: 0x30),
            spec(.ah, Rig.gw2, Rig.gw1, 0x1003, nil, "hmac-sha2-256", encKey: 0, b: 0x40),
            spec(.esp, Rig.gw2v6, Rig.gw1v6, 0x1004, "aes-256-gcm", nil, encKey: 36, b: 0x50),
        ]
        senders = specs.map { try! SecurityAssociation($0, direction: .outbound, store: nil, now: 1) }
        let flows = [
            FlowSpec(direction: .inbound, source: IPPrefix("198.18.2.0/24")!, destination: IPPrefix("198.18.1.0/24")!,
                     local: Rig.gw1, peer: Rig.gw2),
            FlowSpec(direction: .inbound, source: IPPrefix("2001:db8:2::/48")!, destination: IPPrefix("2001:db8:1::/48")!,
                     local: Rig.gw1v6, peer: Rig.gw2v6),
        ]
        // As the daemon builds it: every SA's destination is local, so all are inbound.
        let builder = PolicyBuilder(store: MemorySequenceStore(), maxPolicy: 1000)
        box.replace(try! builder.build(flows: flows, sas: specs, localAddresses: [Rig.gw1, Rig.gw1v6],
                                       previous: .empty, now: 1))
        context = StageContext(marks: .default, snapshot: box, events: NoEvents(), clock: CoarseClock(start: 1), encInterfaceIndex: 9)
    }
}

/// enc0 as the fuzzer sees it: keeps the last frame written (allocates; fuzzing only).
final class LastFrame: PacketDevice {
    var name: String { "enc0" }
    var fileDescriptor: Int32 { -1 }
    var frame: [UInt8]?
    func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult { .wouldBlock }
    func write(from buffer: PacketBuffer) -> IOResult {
        frame = Array(UnsafeRawBufferPointer(buffer.bytes))
        return .done(buffer.count)
    }
}

final class NoEvents: EventSink, @unchecked Sendable {
    func acquire(flow: FlowSpec, index: Int, packet: Selector) {}
    func policyFailure(_ packet: Selector, sa: SecurityAssociation) {}
    func cleartextRefused(_ packet: Selector) {}
    func inputFailure(_ reason: Counter, spi: UInt32, from: IPAddress) {}
}

let rig = Rig()
let buffer = PacketBuffer()

func fuzzInbound(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data = input else { return 0 }
    guard size > 1 else { return 0 }
    let choice = Int(data[0])
    let body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    guard buffer.load(body) else { return 0 }
    if choice & 0x80 != 0 {
        // Seal the bytes as an inner packet with one of the SAs (as the peer would).
        let sa = rig.senders[choice % rig.senders.count]
        let r = sa.spec.proto == .esp
            ? ESPOutput.process(buffer, sa: sa, now: 1, tunnel: TunnelPolicy(), stats: rig.stats)
            : AH.output(buffer, sa: sa, now: 1, tunnel: TunnelPolicy(), stats: rig.stats)
        guard case .send = r else { return 0 }
    }
    var meta = QueuedPacket()
    meta.id = 1
    _ = InputStage.handle(buffer, meta: meta, device: rig.device, context: rig.context, stats: rig.stats)
    // What went into enc0 comes back at [X] with the SA's number in its source MAC.
    if let frame = rig.device.frame, frame.count > 14 {
        rig.device.frame = nil
        var mac: UInt64 = 0
        for b in frame[6..<12] { mac = mac << 8 | UInt64(b) }
        _ = buffer.load(Array(frame[14...]))
        meta.inInterface = 9
        meta.hardwareSource = mac
        _ = SPDStage.handle(buffer, meta: meta, context: rig.context, stats: rig.stats)
    }
    // The same bytes as cleartext at [X] and at the cleartext check.
    _ = buffer.load(body)
    meta = QueuedPacket()
    _ = SPDStage.handle(buffer, meta: meta, context: rig.context, stats: rig.stats)
    _ = buffer.load(body)
    _ = CleartextStage.handle(buffer, meta: meta, context: rig.context, stats: rig.stats)
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzInbound) }
}
