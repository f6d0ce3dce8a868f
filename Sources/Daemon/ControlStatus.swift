// ControlStatus: flows and SAs as the control protocol reports them (encctl -s,
// encstat -r/-a). SA state is read from the SA objects the packet path is using:
// counters from their CounterBlock (any thread may read), sequence numbers and the
// replay window's top as plain word loads, so a value may be one packet old. Keys
// appear only in `text`, and only when the request asked for them.

import Config
import Control
import EncCore
import IPsec

enum ControlStatus {
    static func flow(_ f: FlowSpec) -> FlowStatus {
        let hasPeer = f.type != .bypass && f.type != .deny
        var s = FlowStatus(text: Printer.flow(f), proto: "\(f.proto)", direction: "\(f.direction)",
                          upperProtocol: f.upperProtocol, source: "\(f.source)", sourcePort: f.sourcePort,
                          destination: "\(f.destination)", destinationPort: f.destinationPort,
                          peer: hasPeer ? f.peer.map { "\($0)" } : nil, type: "\(f.type)")
        s.owner = f.owner
        s.child = f.child
        return s
    }

    /// An SA as events name it.
    static func eventSA(_ sa: SecurityAssociation) -> EventSA {
        EventSA(proto: "\(sa.spec.proto)", spi: sa.spec.spi, source: "\(sa.spec.source)",
                destination: "\(sa.spec.destination)", direction: "\(sa.direction)",
                owner: sa.spec.owner, child: sa.spec.child)
    }

    /// A packet's selector as events report it (ports only where it has them).
    static func eventPacket(_ s: Selector) -> EventPacket {
        let ports = s.sourcePort != 0 || s.destinationPort != 0
        return EventPacket(source: "\(s.source)", destination: "\(s.destination)", proto: s.proto,
                           sourcePort: ports ? s.sourcePort : nil, destinationPort: ports ? s.destinationPort : nil)
    }

    /// `lastActive`: when the SA last carried a packet, as the control tick saw it.
    static func sa(_ sa: SecurityAssociation, now: UInt64, showKeys: Bool, defaultReplayWindow: Int,
                   lastActive: UInt64? = nil) -> SAStatus {
        let spec = sa.spec
        let state = sa.hardExpired ? "hard-expired" : sa.exhausted ? "exhausted" : sa.softExpired ? "soft-expired" : "mature"
        var flags: [String] = []
        if spec.replayWindow > 0 { flags.append("replay") }
        if spec.extendedSequence { flags.append("esn") }
        if spec.encapsulation != nil { flags.append("udpencap") }
        flags.append("\(spec.mode)")
        let c = sa.counters
        let firstUse = sa.firstUsedAt
        var s = SAStatus(text: Printer.sa(spec, showKeys: showKeys, defaultReplayWindow: defaultReplayWindow),
                         proto: "\(spec.proto)", spi: spec.spi, source: "\(spec.source)",
                         destination: "\(spec.destination)", direction: "\(sa.direction)", state: state,
                         replayWindow: spec.replayWindow,
                         sequence: sa.direction == .inbound ? sa.lastSequence : sa.lastSequence &+ 1,
                         packets: c[.packets], bytes: c[.bytes], drops: c[.drops],
                         replayDrops: c[.replayDrops], authFailures: c[.authFailures],
                         age: now >= sa.addedAt ? now - sa.addedAt : 0,
                         sinceFirstUse: firstUse.map { now >= $0 ? now - $0 : 0 }, flags: flags)
        func left(_ limit: UInt64?, _ used: UInt64) -> UInt64? { limit.map { $0 > used ? $0 - used : 0 } }
        func secondsLeft(_ l: Lifetime) -> UInt64? {
            var best: UInt64?
            if let t = l.seconds { best = left(Lifetime.deadline(sa.addedAt, t), now) }
            if let t = l.secondsSinceUse {
                let v = firstUse.map { left(Lifetime.deadline($0, t), now)! } ?? t
                best = min(best ?? v, v)
            }
            return best
        }
        s.hardBytesLeft = left(spec.hardLifetime.bytes, c[.bytes])
        s.hardPacketsLeft = left(spec.hardLifetime.packets, c[.packets])
        s.hardSecondsLeft = secondsLeft(spec.hardLifetime)
        s.softBytesLeft = left(spec.softLifetime.bytes, c[.bytes])
        s.softPacketsLeft = left(spec.softLifetime.packets, c[.packets])
        s.softSecondsLeft = secondsLeft(spec.softLifetime)
        s.owner = spec.owner
        s.child = spec.child
        if c[.packets] > 0 { s.idle = lastActive.map { now >= $0 ? now - $0 : 0 } ?? 0 }
        if sa.direction == .outbound, let e = spec.encapsulation {
            let (addr, port) = sa.natEndpoint()
            if addr != nil || port != nil {
                let a = addr ?? spec.destination
                let p = port ?? e.peerPort ?? e.port
                s.natPeer = a.family == .inet6 ? "[\(a)]:\(p)" : "\(a):\(p)"
            }
        }
        return s
    }
}
