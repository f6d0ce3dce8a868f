// The four packet stages, each run by its own workers: [X] and the
// cleartext check read an NFQUEUE queue, IPsec out reads enc0, IPsec in reads raw ESP
// and AH sockets and encd's UDP sockets for ESP in UDP. They hold no kernel handles: a stage gets a packet and its
// metadata, returns the verdict, and talks to the kernel only through
// PacketSender/PacketDevice (fakes in tests).
//
//   [X]      (spd queue)    packets leaving the host or forwarded by it, before NAT on
//                           enc0: SPD lookup → bypass / deny / protect(policy in mark);
//                           packets that came out of enc0 first pass the inbound check
//   IPsec out (enc0 read)   what routing sent into enc0, after NAT on enc0, read from the
//                           TAP (GSO frames cut up): ESP/AH with the SA the mark names
//                           (carried in the frame's destination MAC) → raw socket → the
//                           host's output path
//   IPsec in  (raw and UDP  ESP and AH for this host, after every input hook (raw
//              sockets)     sockets), ESP in UDP (UDP sockets, tproxy): decapsulate → write into enc0
//                           as an Ethernet frame whose source address carries the SA's
//                           number
//   cleartext (cleartext    inbound cleartext where a flow naming a protocol or ports
//              queue)       decides whether a require flow forbids it: drop or accept
//
// Binding a decrypted packet to its SA across NAT on enc0: a write into enc0 carries
// no mark, and NAT may rewrite addresses and ports before the inbound check. enc0 is
// a TAP device without ARP; the frame's source MAC (06:65:6e + the SA's 24-bit
// number) survives NAT, and NFQUEUE reports it (NFQA_HWADDR) at [X], which runs after
// dstnat. So the check judges the packet as it is after NAT, against the SA that
// really carried it (OpenBSD's ipsec_forward_check/ipsec_local_check order).
//
// Packet order per SA: IPsec out and IPsec in (raw) have several workers, and every
// SA belongs to one (WorkerShare: outbound by number, inbound by SPI; the kernel
// steers the packets, the stages check again); a UDP-encapsulated inbound SA belongs
// to the worker of encd's UDP sockets (ESPInput refuses the other kind first). So each SA's
// sequence numbers and replay window have one owner.

#if canImport(Glibc)
import Glibc
#endif
import EncCore
import IPsec
import Kernel
import Synchronization

/// What a stage tells the kernel about the queued packet.
public typealias StageVerdict = QueueVerdict

/// Read-mostly state every stage shares.
public final class StageContext: @unchecked Sendable {
    public let marks: MarkLayout
    public let events: EventSink
    /// enc0's own MAC; frames encd writes are addressed to it.
    public static let interfaceMAC: [UInt8] = [0x02, 0x65, 0x6e, 0x63, 0x30, 0x00]
    /// Injected frames' source MAC: this prefix and the SA's number in the low 24 bits.
    public static let injectedPrefix: UInt64 = 0x06_65_6e << 24
    /// The enc0 interface index (packets that arrive from it get the inbound check).
    public var encInterfaceIndex: UInt32
    private let current: SnapshotBox
    /// Monotonic seconds, set by the control thread once a second.
    public var now: UInt64 { clock.now }
    public let clock: CoarseClock
    public var tunnel = TunnelPolicy()
    /// esp/ah/udpencap enable, changed at run time by encctl or a reload.
    public let switches: RuntimeSwitches
    private let mtu = Atomic<Int>(1400)
    /// enc0's MTU as encd last set it (the control thread compares before setting it again).
    public var interfaceMTU: Int {
        get { mtu.load(ordering: .relaxed) }
        set { mtu.store(newValue, ordering: .relaxed) }
    }

    public init(marks: MarkLayout, snapshot: SnapshotBox,
                events: EventSink, clock: CoarseClock, encInterfaceIndex: UInt32 = 0,
                switches: RuntimeSwitches = RuntimeSwitches()) {
        self.marks = marks
        self.current = snapshot
        self.events = events
        self.clock = clock
        self.encInterfaceIndex = encInterfaceIndex
        self.switches = switches
    }

    @inline(__always) public var snapshot: PolicySnapshot { current.value }
}

public enum SPDStage {
    /// [X]: decides for one packet leaving (or passing through) the host; a packet
    /// that came out of enc0 first passes the inbound check.
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket,
                              context ctx: StageContext, stats: CounterBlock<Counter>) -> StageVerdict {
        guard let sel = selector(buffer, stats) else { return .drop }
        let snap = ctx.snapshot
        let fromEnc = meta.inInterface != 0 && meta.inInterface == ctx.encInterfaceIndex
        if fromEnc {
            // Inbound check after NAT on enc0 (RFC 4301 §5.2, OpenBSD's order).
            guard let mac = meta.hardwareSource, mac >> 24 == StageContext.injectedPrefix >> 24,
                  let sa = snap.inbound(number: UInt32(truncatingIfNeeded: mac & 0xff_ffff)) else {
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
            // A decrypted packet is marked INBOUND: routing's reverse-path check then
            // finds its source behind enc0 (MarkLayout), even with no route back.
            return .acceptWithMark(fromEnc ? ctx.marks.inboundMark(keeping: meta.mark) : ctx.marks.bypassMark(keeping: meta.mark))
        case .deny:
            stats.add(.denyFlowDropped)
            return .drop
        case .protect(_, let sa):
            guard let n = snap.numberOf[sa.key], let mark = ctx.marks.protectMark(policy: n, keeping: meta.mark) else {
                stats.add(.failClosed)
                return .drop
            }
            return .acceptWithMark(mark)
        case .noSA(let flow, let sendClear, let acquire):
            if acquire {
                stats.add(.acquireRequested)
                ctx.events.acquire(flow: snap.spd.flows[flow], index: flow, packet: sel)
            }
            if sendClear { return .acceptWithMark(ctx.marks.bypassMark(keeping: meta.mark)) }
            stats.add(snap.spd.flows[flow].type == .dontacq ? .dontacqWithoutSA : .requireWithoutSA)
            return .drop
        }
    }

    /// The packet's selector; nil (counted as malformed) when it cannot be parsed.
    @inline(__always)
    static func selector(_ buffer: PacketBuffer, _ stats: CounterBlock<Counter>) -> Selector? {
        guard case .success(let info) = PacketInfo.parse(buffer.bytes, options: PacketParseOptions(allowTrailingBytes: true)) else {
            stats.add(.malformedPacket)
            return nil
        }
        return Selector(info)
    }
}

public enum CleartextStage {
    /// Inbound cleartext (it did not come through enc0) between addresses where the
    /// protocol or ports decide (require_check4/6): dropped when its most specific
    /// inbound flow requires IPsec, accepted otherwise (require_in is a chain of its
    /// own, so an accept goes on to [X]).
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket,
                              context ctx: StageContext, stats: CounterBlock<Counter>) -> StageVerdict {
        guard let sel = SPDStage.selector(buffer, stats) else { return .drop }
        guard ctx.snapshot.spd.inboundRequiresIPsec(sel) else { return .accept }
        stats.add(.inboundCleartextDropped)
        ctx.events.cleartextRefused(sel)
        return .drop
    }
}

public enum OutputStage {
    /// IPsec out: protects what routing sent into enc0, read from the device as a frame
    /// (virtio_net_hdr, Ethernet header, IP packet), and sends it through the raw
    /// socket. The [X] answer travels in the frame's destination MAC: enc0's netdev
    /// egress chain writes the packet's mark into its last four bytes
    /// (EncdRuleset.egressTable), after NAT on enc0 and conntrack, which have seen the
    /// packet go out. A GSO frame (a TCP super-packet, a UDP GSO packet) is cut into
    /// the packets the kernel's segmentation would have sent, each protected and sent
    /// in order; a packet whose checksum was left to the device gets it finished.
    ///
    /// The kernel checked enc0's MTU before handing the frame over (a packet too big
    /// for enc0 that may not be fragmented got "fragmentation needed" / "packet too
    /// big", or EMSGSIZE for a local socket; one that may, was fragmented), so every
    /// packet here fits enc0. The verdict is meaningless: the frame is already the
    /// device's; `.drop` is returned when it was not sent.
    /// `share`: the SAs this worker owns (the kernel's steering sends it only theirs;
    /// any other is dropped here, never protected by two workers at once).
    public static func handleFrame(_ buffer: PacketBuffer, sender: PacketSender, scratch: PacketBuffer,
                                   context ctx: StageContext, share: WorkerShare = .whole,
                                   stats: CounterBlock<Counter>) -> StageVerdict {
        let f = buffer.bytes
        guard let vnet = VirtioNetHeaderFields.read(UnsafeRawBufferPointer(f)), f.count > VirtioNetHeader.size + 14 else {
            stats.add(.malformedPacket)
            return .drop
        }
        let eth = VirtioNetHeader.size
        let mark = f.be32(eth + 2)
        let type = f.be16(eth + 12)
        guard type == 0x0800 || type == 0x86DD, buffer.trimFront(eth + 14) else {
            stats.add(.malformedPacket)
            return .drop
        }
        guard let policy = ctx.marks.policy(of: mark), share.owns(policy), let sa = ctx.snapshot.outbound(policy: policy) else {
            // The kernel's own link-local multicast (an MLD report when enc0 comes up,
            // before the rules that drop it exist) is never IPsec: dropped uncounted.
            if !isLinkLocalMulticast(buffer.bytes) { stats.add(.failClosed) }
            return .drop
        }
        if let refused = disabled(sa, ctx.switches) {
            stats.add(refused)
            return .drop
        }
        if vnet.kind == 0 {
            if vnet.needsChecksum {
                guard GSOSegmentation.completeChecksum(buffer.bytes, start: vnet.checksumStart - 14, offset: vnet.checksumOffset) else {
                    stats.add(.malformedPacket)
                    return .drop
                }
            }
            stats.add(.encOutputPackets)
            stats.add(.encOutputBytes, UInt64(buffer.count))
            return protectAndSend(buffer, sa: sa, sender: sender, context: ctx, stats: stats) ? .accept : .drop
        }
        var allSent = true
        let cut = GSOSegmentation.segment(buffer.bytes, vnet: vnet, into: scratch) { piece in
            stats.add(.encOutputPackets)
            stats.add(.encOutputBytes, UInt64(piece.count))
            allSent = protectAndSend(piece, sa: sa, sender: sender, context: ctx, stats: stats)
            return allSent
        }
        guard cut else {
            stats.add(.malformedPacket)
            return .drop
        }
        return allSent ? .accept : .drop
    }

    /// IPv6 to ff02::/16.
    @inline(__always) static func isLinkLocalMulticast(_ p: UnsafeMutableRawBufferPointer) -> Bool {
        p.count >= 40 && p[0] >> 4 == 6 && p[24] == 0xff && p[25] & 0x0f == 0x02
    }

    /// Protects one packet with `sa` and sends it; false (counted) when it did not go out.
    static func protectAndSend(_ buffer: PacketBuffer, sa: SecurityAssociation, sender: PacketSender,
                               context ctx: StageContext, stats: CounterBlock<Counter>) -> Bool {
        let result = sa.spec.proto == .esp
            ? ESPOutput.process(buffer, sa: sa, now: ctx.now, tunnel: ctx.tunnel, stats: stats)
            : AH.output(buffer, sa: sa, now: ctx.now, tunnel: ctx.tunnel, stats: stats)
        guard case .send = result else { return false }
        switch sender.send(buffer) {
        case .done:
            return true     // or kept back for a run: counted by `flush` if it then fails
        case .wouldBlock, .failed(ENOBUFS):
            // The socket's (or the device's) queue is full: OpenBSD's qfull.
            stats.add(sa.spec.proto == .esp ? .espQueueFull : .ahQueueFull)
            return false
        case .failed(EMSGSIZE):
            // Larger than the outgoing link takes (its MTU is below what enc0 assumes).
            stats.add(sa.spec.proto == .esp ? .espTooBig : .ahTooBig)
            return false
        case .failed:
            stats.add(sa.spec.proto == .esp ? .espSendFailed : .ahSendFailed)
            return false
        }
    }

    /// After a batch of frames: sends what the sender kept back (runs of ESP-in-UDP
    /// datagrams, UDPEncapSender) and counts those it could not send as a send of one
    /// packet is counted in `protectAndSend` (only ESP is ever kept back).
    public static func flush(_ sender: PacketSender, stats: CounterBlock<Counter>) {
        let t = sender.flush()
        if t.full > 0 { stats.add(.espQueueFull, UInt64(t.full)) }
        if t.tooBig > 0 { stats.add(.espTooBig, UInt64(t.tooBig)) }
        if t.failed > 0 { stats.add(.espSendFailed, UInt64(t.failed)) }
    }

    /// The counter of a packet the switches forbid to protect with `sa`, nil when allowed.
    @inline(__always) static func disabled(_ sa: SecurityAssociation, _ sw: RuntimeSwitches) -> Counter? {
        if sa.spec.proto == .esp {
            if !sw.espEnabled { return .espDisabledOutput }
            if sa.spec.encapsulation != nil && !sw.udpEncapEnabled { return .udpEncapDisabledOutput }
        } else if !sw.ahEnabled {
            return .ahDisabledOutput
        }
        return nil
    }
}

public enum InputStage {
    /// IPsec in: unprotects one ESP/AH/ESP-in-UDP packet and writes the result into
    /// enc0. IKE on the NAT-T port is accepted for its socket; everything else is
    /// consumed (dropped from the queue) whatever happens to it.
    /// `share`: the SPIs of raw ESP/AH this worker owns (its sockets' filters keep only
    /// those; one that came in before a filter was attached is dropped here).
    public static func handle(_ buffer: PacketBuffer, meta: QueuedPacket, device: PacketDevice,
                              context ctx: StageContext, share: WorkerShare = .whole,
                              stats: CounterBlock<Counter>) -> StageVerdict {
        let snap = ctx.snapshot
        let p = buffer.bytes
        guard let outer = IPLayout.read(p) else {
            stats.add(.malformedPacket)
            return .drop
        }
        if share.count > 1, outer.payloadProtocol != IPProtocol.udp {
            // As the sockets' filter: by the SPI's hash, a packet too short for one is worker 0's.
            let at = outer.headerLength + (outer.payloadProtocol == IPProtocol.ah ? 4 : 0)
            let owned = at + 4 <= min(outer.packetLength, p.count) ? share.owns(spi: p.be32(at)) : share.index == 0
            guard owned else {
                stats.add(.failClosed)
                return .drop
            }
        }
        if let refused = disabled(p, outer, ctx.switches) {
            stats.add(refused)
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
            stats.add(.encInputPackets)
            stats.add(.encInputBytes, UInt64(buffer.count))
            guard let number = snap.numberOf[sa.key], prependFrameHeader(buffer, number: number) else {
                stats.add(sa.spec.proto == .esp ? .espInputProcessing : .ahInputProcessing)
                return .drop
            }
            switch device.write(from: buffer) {
            case .done: break
            case .wouldBlock, .failed(ENOBUFS): stats.add(.encWriteFull)
            case .failed: stats.add(sa.spec.proto == .esp ? .espInputProcessing : .ahInputProcessing)
            }
            return .drop
        }
    }

    /// The counter of a packet the switches forbid to process, nil when allowed. IKE
    /// (non-ESP marker) and keepalives on the NAT-T port are left to ESPInput.
    @inline(__always) static func disabled(_ p: UnsafeMutableRawBufferPointer, _ outer: IPLayout, _ sw: RuntimeSwitches) -> Counter? {
        switch outer.payloadProtocol {
        case IPProtocol.ah:
            return sw.ahEnabled ? nil : .ahDisabledInput
        case IPProtocol.udp:
            let marker = outer.headerLength + 8
            guard marker + 4 <= outer.packetLength, p.be32(marker) != 0 else { return nil }
            if !sw.udpEncapEnabled { return .udpEncapDisabledInput }
            return sw.espEnabled ? nil : .espDisabledInput
        default:
            return sw.espEnabled ? nil : .espDisabledInput
        }
    }

    /// The Ethernet header of an injected frame: to enc0, from the SA's number.
    static func prependFrameHeader(_ buffer: PacketBuffer, number: UInt32) -> Bool {
        guard buffer.count > 0 else { return false }
        let type: UInt16 = buffer.bytes[0] >> 4 == 6 ? 0x86DD : 0x0800
        guard buffer.prepend(14) else { return false }
        let p = buffer.bytes
        for i in 0..<6 { p[i] = StageContext.interfaceMAC[i] }
        let src = StageContext.injectedPrefix | UInt64(number & 0xff_ffff)
        for i in 0..<6 { p[6 + i] = UInt8(truncatingIfNeeded: src >> UInt64(40 - 8 * i)) }
        p.setBE16(12, type)
        return true
    }

    private static func spi(_ p: UnsafeMutableRawBufferPointer, _ outer: IPLayout) -> UInt32 {
        let at = outer.headerLength + (outer.payloadProtocol == IPProtocol.udp ? 8 : (outer.payloadProtocol == IPProtocol.ah ? 4 : 0))
        return at + 4 <= p.count ? p.be32(at) : 0
    }
}
