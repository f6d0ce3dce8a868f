// The three packet stages, one per NFQUEUE queue, each run by its own worker. They
// hold no kernel handles: a stage gets a packet and its metadata, returns the verdict,
// and talks to the kernel only through PacketSender/PacketDevice (fakes in tests).
//
//   [X]      (spd queue)    packets leaving the host or forwarded by it, before NAT on
//                           enc0: SPD lookup → bypass / deny / protect(policy in mark);
//                           packets that came out of enc0 first pass the inbound check
//   IPsec out (output queue) what routing sent to enc0, after NAT on enc0: ESP/AH with the
//                           SA the mark names → raw socket → the host's output path
//   IPsec in  (input queue) ESP, AH, ESP-in-UDP for this host, after its input filter:
//                           decapsulate → ledger → write into enc0
//
// Packet order per SA: every outbound SA is handled by the output worker and every
// inbound SA by the input worker, so each SA's sequence numbers and replay window
// have one owner. With several queues per stage (fanout), SAs will be pinned to
// workers; the stages already take a per-worker CounterBlock.

import EncCore
import IPsec
import Kernel

/// What a stage tells the kernel about the queued packet.
public typealias StageVerdict = QueueVerdict

/// Read-mostly state every stage shares.
public final class StageContext: @unchecked Sendable {
    public let marks: MarkLayout
    public let ledger: InjectionLedger
    public let events: EventSink
    /// The enc0 interface index (packets that arrive from it get the inbound check).
    public var encInterfaceIndex: UInt32
    private let current: SnapshotBox
    /// Monotonic seconds, set by the control thread once a second.
    public var now: UInt64 { clock.now }
    public let clock: CoarseClock
    public var tunnel = TunnelPolicy()

    public init(marks: MarkLayout, snapshot: SnapshotBox, ledger: InjectionLedger = InjectionLedger(),
                events: EventSink, clock: CoarseClock, encInterfaceIndex: UInt32 = 0) {
        self.marks = marks
        self.current = snapshot
        self.ledger = ledger
        self.events = events
        self.clock = clock
        self.encInterfaceIndex = encInterfaceIndex
    }

    @inline(__always) public var snapshot: PolicySnapshot { current.value }
}

public enum SPDStage {
    /// [X]: decides for one packet leaving (or passing through) the host. `preNAT`
    /// is the tuple the packet had when it was written into enc0 (from conntrack), for
    /// packets that came from enc0; nil means "as it is now".
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket, preNAT: FlowTuple?,
                              context ctx: StageContext, stats: CounterBlock<Counter>) -> StageVerdict {
        guard case .success(let info) = PacketInfo.parse(buffer.bytes, options: PacketParseOptions(allowTrailingBytes: true)) else {
            stats.add(.malformedPacket)
            return .drop
        }
        let snap = ctx.snapshot
        let sel = Selector(source: info.source, destination: info.destination, proto: info.protocol,
                           sourcePort: info.hasPorts ? info.sourcePort : 0,
                           destinationPort: info.hasPorts ? info.destinationPort : 0)
        if meta.inInterface != 0 && meta.inInterface == ctx.encInterfaceIndex {
            // Inbound check after NAT on enc0 (RFC 4301 §5.2, OpenBSD's order).
            let tuple = preNAT ?? FlowTuple(info, UnsafeRawBufferPointer(buffer.bytes))
            guard let sa = ctx.ledger.lookup(tuple) else {
                stats.add(.failClosed)
                return .drop
            }
            guard snap.spd.inboundAllowed(sel, carriedBy: sa) else {
                stats.add(sa.spec.proto == .esp ? .espPolicyMismatch : .ahPolicyMismatch)
                ctx.events.policyFailure(sel, sa: sa)
                return .drop
            }
        }
        switch snap.spd.decideOutbound(sel) {
        case .notIPsec, .bypass:
            return .acceptWithMark(ctx.marks.bypassMark(keeping: meta.mark))
        case .deny:
            stats.add(.denyFlowDropped)
            return .drop
        case .protect(_, let sa):
            guard let n = snap.policyOf[sa.key], let mark = ctx.marks.protectMark(policy: n, keeping: meta.mark) else {
                stats.add(.failClosed)
                return .drop
            }
            return .acceptWithMark(mark)
        case .noSA(let flow, let sendClear, let acquire):
            if acquire {
                stats.add(.acquireRequested)
                ctx.events.acquire(flow: snap.spd.flows[flow], packet: sel)
            }
            if sendClear { return .acceptWithMark(ctx.marks.bypassMark(keeping: meta.mark)) }
            stats.add(snap.spd.flows[flow].type == .dontacq ? .dontacqWithoutSA : .requireWithoutSA)
            return .drop
        }
    }
}

public enum OutputStage {
    /// IPsec out: protects the packet routing sent to enc0 and sends it. The queued
    /// cleartext original is then accepted into enc0, whose zero-length transmit queue
    /// drops it: accepting lets conntrack confirm the connection, so NAT done on enc0
    /// is reversed for the replies (a drop verdict would discard the new entry). On
    /// any failure the original is dropped here.
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket, sender: PacketSender,
                              context ctx: StageContext, stats: CounterBlock<Counter>) -> StageVerdict {
        stats.add(.encOutputPackets)
        stats.add(.encOutputBytes, UInt64(buffer.count))
        guard let policy = ctx.marks.policy(of: meta.mark), let sa = ctx.snapshot.outbound(policy: policy) else {
            stats.add(.failClosed)
            return .drop
        }
        let result = sa.spec.proto == .esp
            ? ESPOutput.process(buffer, sa: sa, now: ctx.now, tunnel: ctx.tunnel, stats: stats)
            : AH.output(buffer, sa: sa, now: ctx.now, tunnel: ctx.tunnel, stats: stats)
        guard case .send = result else { return .drop }
        if case .failed = sender.send(buffer) {
            stats.add(sa.spec.proto == .esp ? .espSendFailed : .ahSendFailed)
            return .drop
        }
        return .accept
    }
}

public enum InputStage {
    /// IPsec in: unprotects one ESP/AH/ESP-in-UDP packet and writes the result into
    /// enc0. IKE on the NAT-T port is accepted for its socket; everything else is
    /// consumed (dropped from the queue) whatever happens to it.
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket, device: PacketDevice,
                              context ctx: StageContext, stats: CounterBlock<Counter>) -> StageVerdict {
        let snap = ctx.snapshot
        let p = buffer.bytes
        guard let outer = IPLayout.read(p) else {
            stats.add(.malformedPacket)
            return .drop
        }
        let result = outer.payloadProtocol == IPProtocol.ah
            ? AH.input(buffer, sad: snap.sad, now: ctx.now, stats: stats)
            : ESPInput.process(buffer, sad: snap.sad, now: ctx.now, stats: stats)
        switch result {
        case .notESP:
            return .accept
        case .dropped(let reason):
            if reason == .espAuthFailed || reason == .ahAuthFailed || reason == .espReplay || reason == .ahReplay {
                ctx.events.inputFailure(reason, spi: outer.packetLength >= outer.headerLength + 8 ? spi(p, outer) : 0, from: outer.source)
            }
            return .drop
        case .decapsulated(let sa):
            if case .success(let info) = PacketInfo.parse(buffer.bytes, options: PacketParseOptions(allowTrailingBytes: true)) {
                ctx.ledger.record(FlowTuple(info, UnsafeRawBufferPointer(buffer.bytes)), sa: sa)
            }
            stats.add(.encInputPackets)
            stats.add(.encInputBytes, UInt64(buffer.count))
            if case .failed = device.write(from: buffer) {
                stats.add(sa.spec.proto == .esp ? .espInputProcessing : .ahInputProcessing)
            }
            return .drop
        }
    }

    private static func spi(_ p: UnsafeMutableRawBufferPointer, _ outer: IPLayout) -> UInt32 {
        let at = outer.headerLength + (outer.payloadProtocol == IPProtocol.udp ? 8 : (outer.payloadProtocol == IPProtocol.ah ? 4 : 0))
        return at + 4 <= p.count ? p.be32(at) : 0
    }
}
