// RawInputQueue: ESP and AH for this host, received on raw IPPROTO_ESP / IPPROTO_AH
// sockets (IPv4 and IPv6) instead of an NFQUEUE (issue #9). The kernel delivers to a
// raw socket after every input hook, so the administrator's input filter (and
// encd's ipsec_input chain, which counts) has seen the packet first; with no kernel
// ESP or AH the socket's copy is the only one and the kernel frees the packet. No
// verdict exists: `setVerdict` and `flushVerdicts` do nothing.
//
// Stages of `receive`:
//   1. with `wait`, poll the four sockets for at most a second (so the worker's loop,
//      its heartbeat and `stop()` keep moving when nothing arrives)
//   2. recvmmsg from each socket in turn, without waiting, into the batch's free slots
//   3. IPv4 reads start with the IP header as it arrived (after reassembly); an IPv6
//      read starts at the ESP or AH header, so the fixed header is written in front of
//      it from what the socket reports: source (the address), destination
//      (IPV6_PKTINFO), traffic class and flow label (IPV6_FLOWINFO), hop limit
//      (IPV6_HOPLIMIT). Extension headers before ESP/AH are not reported and are left
//      out (an AH whose ICV covered an option header then fails verification).
// A datagram larger than its buffer (MSG_TRUNC) is dropped (malformed). What a socket
// could not hold while encd was slow, the kernel dropped and reports with every packet
// (SO_RXQ_OVFL): `counters.overruns`. ICMP errors quoting an ESP or AH packet of this
// host (anyone can forge one) leave no error on these sockets: the kernel reports them
// only to a connected raw socket or one with IP_RECVERR / IPV6_RECVERR, and these are
// neither (a namespace test sends forged ones). Should a socket report an error all
// the same, it is counted (`counters.socketErrors`) and the other sockets are read as
// usual: only errors of encd's own making fail the receive, where the worker backs off. Without a reader (encd stopped or killed) the
// kernel drops ESP and AH and answers ICMP "protocol unreachable" (IPv6: "parameter
// problem"), which encd's ruleset keeps from leaving. Allocates nothing per packet.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore

public final class RawInputQueue: PacketQueue {
    public let number: UInt16
    /// Written by this queue's worker, read by the control thread.
    let cells = QueueCounterCells()
    public var counters: QueueCounters { cells.snapshot }
    /// The sockets: IPv4 ESP, IPv4 AH, IPv6 ESP, IPv6 AH.
    public let descriptors: [Int32]
    public var fileDescriptor: Int32 { descriptors[0] }
    private static let ipv6HeaderSize = 40
    private static let controlSize = 128
    private let maxBatch: Int
    private let pollSet: UnsafeMutablePointer<pollfd>
    private let headers: UnsafeMutablePointer<encshim_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_in6>
    private let control: UnsafeMutableRawPointer
    /// Per socket, the drop count its last packet reported.
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var drops: [UInt32]
    @exclusivity(unchecked) private var info = encshim_rx_info()
    /// Which socket is read first next time (none starves another when batches fill).
    @exclusivity(unchecked) private var first = 0
    private let waitMilliseconds: Int32

    /// The SPIs this reader's sockets keep (the stage's other workers read the rest).
    public let share: WorkerShare

    /// Opens the four sockets (CAP_NET_RAW). `number` is only a label (encstat shows
    /// the ipsec-in stage under the NAT-T queue's number). With a share of several
    /// workers, each socket keeps only the packets whose SPI is in it (a classic BPF
    /// filter: the kernel hands every raw socket of the protocol a copy).
    public init(number: UInt16, share: WorkerShare = .whole, maxBatch: Int = 64, socketBuffer: Int32 = 8 << 20,
                waitMilliseconds: Int32 = 1000) throws {
        self.number = number
        self.share = share
        self.maxBatch = max(1, maxBatch)
        self.waitMilliseconds = waitMilliseconds
        var opened: [Int32] = []
        do {
            for (family, proto) in [(AF_INET, IPProtocol.esp), (AF_INET, IPProtocol.ah), (AF_INET6, IPProtocol.esp), (AF_INET6, IPProtocol.ah)] {
                opened.append(try Self.open(family: family, proto: Int32(proto), socketBuffer: socketBuffer, share: share))
            }
        } catch {
            opened.forEach(closeDescriptor)
            throw error
        }
        descriptors = opened
        drops = [UInt32](repeating: 0, count: opened.count)
        pollSet = .allocate(capacity: opened.count)
        for (i, fd) in opened.enumerated() { pollSet[i] = pollfd(fd: fd, events: Int16(POLLIN), revents: 0) }
        headers = .allocate(capacity: self.maxBatch)
        headers.initialize(repeating: encshim_mmsghdr(), count: self.maxBatch)
        iovecs = .allocate(capacity: self.maxBatch)
        iovecs.initialize(repeating: iovec(), count: self.maxBatch)
        names = .allocate(capacity: self.maxBatch)
        names.initialize(repeating: sockaddr_in6(), count: self.maxBatch)
        control = .allocate(byteCount: self.maxBatch * Self.controlSize, alignment: 16)
    }

    deinit {
        descriptors.forEach(closeDescriptor)
        pollSet.deallocate()
        headers.deallocate()
        iovecs.deallocate()
        names.deallocate()
        control.deallocate()
    }

    private static func open(family: Int32, proto: Int32, socketBuffer: Int32, share: WorkerShare) throws -> Int32 {
        let name = "\(family == AF_INET ? "inet" : "inet6") \(proto == Int32(IPProtocol.esp) ? "esp" : "ah")"
        let fd = Int32(try Syscall.check("socket(\(name), SOCK_RAW)") {
            socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), proto)
        })
        do {
            // From here on the socket queues only its share; a packet that came in
            // before reaches every worker, and the stage drops it where it is not owned.
            if share.count > 1 {
                let spiOffset: UInt32 = proto == Int32(IPProtocol.ah) ? 4 : 0
                try Syscall.check("setsockopt(\(name) SO_ATTACH_FILTER, SPIs of worker \(share))") {
                    encshim_attach_spi_share(fd, family == AF_INET ? 1 : 0, spiOffset, WorkerShare.spiMultiplier,
                                             share.count, share.index)
                }
            }
            var size = socketBuffer
            // FORCE needs CAP_NET_ADMIN and ignores rmem_max; fall back to the capped option.
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                try setOption(fd, SOL_SOCKET, SO_RCVBUF, size, "\(name) SO_RCVBUF")
            }
            try setOption(fd, SOL_SOCKET, encshim_so_rxq_ovfl(), 1, "\(name) SO_RXQ_OVFL")
            if family == AF_INET6 {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_RECVPKTINFO, 1, "\(name) IPV6_RECVPKTINFO")
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_RECVHOPLIMIT, 1, "\(name) IPV6_RECVHOPLIMIT")
                try setOption(fd, Int32(IPPROTO_IPV6), encshim_ipv6_flowinfo_option(), 1, "\(name) IPV6_FLOWINFO")
            }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32, _ what: String) throws {
        var v = value
        try Syscall.check("setsockopt(\(what))") { setsockopt(fd, level, option, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    public func receive(into batch: QueueBatch, wait: Bool) -> IOResult {
        batch.count = 0
        let sockets = descriptors.count
        if wait {
            for i in 0..<sockets { pollSet[i].revents = 0 }
            switch Syscall.retry({ poll(pollSet, nfds_t(sockets), waitMilliseconds) }) {
            case .done(0), .wouldBlock: return .wouldBlock
            case .failed(let e): return .failed(e)
            case .done: break
            }
        }
        var n = 0
        var lastError: Int32 = 0
        for k in 0..<sockets {
            let s = (first + k) % sockets
            if wait && pollSet[s].revents == 0 { continue }
            let room = min(batch.capacity, maxBatch) - n
            guard room > 0 else { break }
            switch receive(socket: s, batch: batch, from: n, room: room) {
            case .done(let got): n += got
            case .failed(let e) where Self.isLocalFault(e): lastError = e
            case .failed: cells.add(.socketErrors)
            case .wouldBlock: break
            }
        }
        first = (first + 1) % sockets
        batch.count = n
        cells.add(.received, UInt64(n))
        if n == 0 { return lastError != 0 ? .failed(lastError) : .wouldBlock }
        return .done(n)
    }

    /// Errors of encd's own making (a closed or wrong descriptor, a bad buffer); every
    /// other error a raw socket returns is the report of an ICMP error from outside.
    @inline(__always) static func isLocalFault(_ e: Int32) -> Bool {
        e == EBADF || e == EFAULT || e == EINVAL || e == ENOTSOCK || e == ENOMEM
    }

    /// One recvmmsg on socket `s` into batch slots from..<from+room; the packets kept
    /// end up compact from `from` on. Returns how many were kept.
    private func receive(socket s: Int, batch: QueueBatch, from: Int, room: Int) -> IOResult {
        let v6 = s >= 2
        let front = v6 ? Self.ipv6HeaderSize : 0
        for i in 0..<room {
            let buffer = batch.buffers[from + i]
            iovecs[i].iov_base = buffer.base + batch.headroom + front
            iovecs[i].iov_len = buffer.capacity - batch.headroom - front
            headers[i].msg_hdr = msghdr()
            headers[i].msg_hdr.msg_iov = iovecs + i
            headers[i].msg_hdr.msg_iovlen = 1
            headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
            headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            headers[i].msg_hdr.msg_control = control + i * Self.controlSize
            headers[i].msg_hdr.msg_controllen = Self.controlSize
            headers[i].msg_len = 0
        }
        let fd = descriptors[s]
        let result = Syscall.retry { encshim_recvmmsg(fd, headers, UInt32(room), Int32(MSG_DONTWAIT)) }
        guard case .done(let got) = result else { return result }
        var kept = 0
        for i in 0..<got {
            encshim_rx_info_read(&headers[i].msg_hdr, &info)
            if info.found & ENCSHIM_RX_DROPS != 0 && info.drops != drops[s] {
                cells.add(.overruns, UInt64(info.drops &- drops[s]))
                drops[s] = info.drops
            }
            let length = Int(headers[i].msg_len)
            guard headers[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) == 0, length > 0 else {
                cells.add(.malformed)
                continue
            }
            let slot = from + kept
            batch.swapBuffers(from + i, slot)
            let buffer = batch.buffers[slot]
            buffer.reset(headroom: batch.headroom)
            if v6 {
                guard length <= 0xffff, info.found & ENCSHIM_RX_DESTINATION != 0 else {
                    cells.add(.malformed)
                    continue
                }
                buffer.setCount(front + length)
                writeIPv6Header(buffer.bytes, payloadLength: length, nextHeader: s == 2 ? IPProtocol.esp : IPProtocol.ah,
                                source: names + i)
            } else {
                buffer.setCount(length)
            }
            batch[slot] = QueuedPacket()
            kept += 1
        }
        return .done(kept)
    }

    /// The IPv6 header in front of a read: what `info` and the source address say.
    private func writeIPv6Header(_ p: UnsafeMutableRawBufferPointer, payloadLength: Int, nextHeader: UInt8,
                                 source: UnsafeMutablePointer<sockaddr_in6>) {
        // flowinfo is in network order without the version: 4 bits version, 8 traffic class, 20 flow label.
        let flow = UInt32(bigEndian: info.flowinfo) & 0x0fff_ffff
        p.setBE32(0, 0x6000_0000 | flow)
        p.setBE16(4, UInt16(truncatingIfNeeded: payloadLength))
        p[6] = nextHeader
        p[7] = info.found & ENCSHIM_RX_HOPLIMIT != 0 ? UInt8(truncatingIfNeeded: info.hop_limit) : 64
        withUnsafeBytes(of: &source.pointee.sin6_addr) { src in
            for j in 0..<16 { p[8 + j] = src[j] }
        }
        withUnsafeBytes(of: &info.destination) { dst in
            for j in 0..<16 { p[24 + j] = dst[j] }
        }
    }

    public func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult { .done(0) }
    public func flushVerdicts() -> IOResult { .done(0) }
}
