// InjectionLedger: remembers which SA carried each decrypted packet encd writes into
// enc0, keyed by the packet's 5-tuple as written. A TUN write carries no mark, and NAT
// on enc0 may rewrite the addresses before the inbound policy check, so the check
// finds the SA by the tuple the packet had before NAT — conntrack's tuple for the
// packet's direction — and then judges the packet as it is after NAT (OpenBSD's
// ipsec_forward_check/ipsec_local_check order).
//
// A fixed open-addressing table: writes overwrite, nothing allocates. Written by the
// input worker, read by the [X] worker; one lock guards it (a seam for sharding).

import EncCore
import IPsec
import Synchronization

public struct FlowTuple: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var proto: UInt8
    /// Ports for TCP/UDP/SCTP; the echo identifier for ICMP echo (in `sourcePort`).
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(source: IPAddress, destination: IPAddress, proto: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The tuple of a parsed packet, as conntrack would key it.
    public init(_ info: PacketInfo, _ p: UnsafeRawBufferPointer) {
        var sp: UInt16 = 0, dp: UInt16 = 0
        if info.hasPorts {
            sp = info.sourcePort
            dp = info.destinationPort
        } else if info.hasICMP, info.transportOffset + 8 <= p.count {
            let echo: Bool = info.family == .inet ? (info.icmpType == 8 || info.icmpType == 0)
                                                  : (info.icmpType == 128 || info.icmpType == 129)
            if echo { sp = p.be16(info.transportOffset + 4) }
        }
        self.init(source: info.source, destination: info.destination, proto: info.protocol, sourcePort: sp, destinationPort: dp)
    }
}

public final class InjectionLedger: @unchecked Sendable {
    private struct Entry {
        var tuple: FlowTuple
        var sa: SecurityAssociation?
    }
    private let slots: Mutex<[Entry]>
    private let mask: Int

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 1 << 16) {
        var n = 1
        while n < capacity { n <<= 1 }
        mask = n - 1
        let blank = Entry(tuple: FlowTuple(source: .any(.inet), destination: .any(.inet), proto: 0), sa: nil)
        slots = Mutex([Entry](repeating: blank, count: n))
    }

    @inline(__always) private func slot(_ t: FlowTuple) -> Int {
        var h = t.source.hi &* 0x9E37_79B9_7F4A_7C15 ^ t.source.lo
        h = (h ^ t.destination.hi) &* 0xC2B2_AE3D_27D4_EB4F ^ t.destination.lo
        h = (h ^ UInt64(t.proto) << 32 ^ UInt64(t.sourcePort) << 16 ^ UInt64(t.destinationPort)) &* 0x1656_67B1_9E37_79F9
        return Int(truncatingIfNeeded: h >> 17) & mask
    }

    public func record(_ t: FlowTuple, sa: SecurityAssociation) {
        let i = slot(t)
        slots.withLock { s in
            if s[i].sa !== sa || s[i].tuple != t { s[i] = Entry(tuple: t, sa: sa) }
        }
    }

    public func lookup(_ t: FlowTuple) -> SecurityAssociation? {
        let i = slot(t)
        return slots.withLock { s in s[i].tuple == t ? s[i].sa : nil }
    }
}
