// SocketInputQueue: IPsec for this host received on sockets instead of an NFQUEUE
// (issue #9), with no verdict (`setVerdict` and `flushVerdicts` do nothing). Two kinds:
//
//   ESP and AH: raw IPPROTO_ESP / IPPROTO_AH sockets (IPv4 and IPv6). The kernel
//   delivers to a raw socket after every input hook, so the administrator's input
//   filter (and encd's ipsec_input chain, which counts) has seen the packet first; with
//   no kernel ESP or AH the socket's copy is the only one and the kernel frees the
//   packet. Without a reader (encd stopped or killed) the kernel drops ESP and AH and
//   answers ICMP "protocol unreachable" (IPv6: "parameter problem"), which encd's
//   ruleset keeps from leaving.
//
//   ESP in UDP: two UDP sockets (IPv4, IPv6) on one port the kernel chooses, with
//   IP_TRANSPARENT. The NAT-T port belongs to the IKE daemon; encd's ruleset hands
//   ESP in UDP for this host (a non-zero first word) to this port with nftables'
//   tproxy in prerouting, per packet, without rewriting it (EncdRuleset, chain
//   ipsec_input_udp), and drops it there when no encd socket takes it. IKE and
//   keepalives stay on their way to the IKE daemon. The socket receives after every
//   input hook, like the raw ones.
//
// Stages of `receive`:
//   1. with `wait`, poll the sockets for at most a second (so the worker's loop, its
//      heartbeat and `stop()` keep moving when nothing arrives)
//   2. recvmmsg from each socket in turn, without waiting, into the batch's free slots
//   3. IPv4 raw reads start with the IP header as it arrived (after reassembly); every
//      other read starts after the headers, which are written in front of it from what
//      the socket reports, so the stage sees the packet as it arrived: source (the
//      address and port), destination (IPV6_PKTINFO; for UDP the address and port,
//      IP_ORIGDSTADDR / IPV6_ORIGDSTADDR), TOS (IP_TOS) or traffic class and flow
//      label (IPV6_FLOWINFO), TTL or hop limit (IP_TTL, IPV6_HOPLIMIT). The IPv4
//      header gets its checksum; the identification and fragment fields are 0 (the
//      packet was reassembled) and the UDP checksum is 0 (the kernel checked it).
//      IPv6 extension headers before ESP/AH are not reported and are left out (an AH
//      whose ICV covered an option header then fails verification).
// A datagram larger than its buffer (MSG_TRUNC) is dropped (malformed). What a socket
// could not hold while encd was slow, the kernel dropped and reports with every packet
// (SO_RXQ_OVFL): `counters.overruns`. ICMP errors quoting an ESP or AH packet of this
// host (anyone can forge one) leave no error on these sockets: the kernel reports them
// only to a connected socket or one with IP_RECVERR / IPV6_RECVERR, and these are
// neither (a namespace test sends forged ones). Should a socket report an error all
// the same, it is counted (`counters.socketErrors`) and the other sockets are read as
// usual: only errors of encd's own making fail the receive, where the worker backs off.
// Allocates nothing per packet.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore

public final class SocketInputQueue: PacketQueue {
    /// What one socket reads, and so which headers go in front of its reads.
    enum Kind {
        case raw4, raw6(UInt8), udp4, udp6

        /// The bytes written in front of a read.
        var front: Int {
            switch self {
            case .raw4: return 0
            case .raw6: return 40
            case .udp4: return 20 + 8
            case .udp6: return 40 + 8
            }
        }
    }

    public let number: UInt16
    /// Written by this queue's worker, read by the control thread.
    let cells = QueueCounterCells()
    public var counters: QueueCounters { cells.snapshot }
    /// The sockets: IPv4 ESP, IPv4 AH, IPv6 ESP, IPv6 AH; or IPv4 UDP, IPv6 UDP.
    public let descriptors: [Int32]
    private let kinds: [Kind]
    public var fileDescriptor: Int32 { descriptors[0] }
    /// ESP in UDP: the port of encd's sockets (the ruleset's tproxy target); 0 for raw
    /// sockets.
    public let socketPort: UInt16
    private static let controlSize = 128
    /// Where a sockaddr_in6 / sockaddr_in holds the address, and where both hold the port.
    private static let ipv6AddressOffset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
    private static let ipv4AddressOffset = MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!
    private static let portOffset = MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!
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

    /// ESP and AH: opens the four raw sockets (CAP_NET_RAW). `number` is only a label
    /// (encstat shows the ipsec-in stage under the number of the queue it replaced).
    /// With a share of several workers, each socket keeps only the packets whose SPI is
    /// in it (a classic BPF filter: the kernel hands every raw socket of the protocol a
    /// copy).
    public convenience init(number: UInt16, share: WorkerShare = .whole, maxBatch: Int = 64, socketBuffer: Int32 = 8 << 20,
                            waitMilliseconds: Int32 = 1000) throws {
        var opened: [Int32] = []
        do {
            for (family, proto) in [(AF_INET, IPProtocol.esp), (AF_INET, IPProtocol.ah), (AF_INET6, IPProtocol.esp), (AF_INET6, IPProtocol.ah)] {
                opened.append(try Self.openRaw(family: family, proto: Int32(proto), socketBuffer: socketBuffer, share: share))
            }
        } catch {
            opened.forEach(closeDescriptor)
            throw error
        }
        self.init(number: number, descriptors: opened, kinds: [.raw4, .raw4, .raw6(IPProtocol.esp), .raw6(IPProtocol.ah)],
                  share: share, socketPort: 0, maxBatch: maxBatch, waitMilliseconds: waitMilliseconds)
    }

    /// ESP in UDP for this host: opens an IPv4 and an IPv6 UDP socket (IP_TRANSPARENT:
    /// CAP_NET_ADMIN) on one port the kernel chooses, `socketPort`, where the ruleset's
    /// tproxy rule sends them. One reader: the sockets carry no SPI filter (the kernel
    /// picks the socket by port, not by SPI).
    public convenience init(udpEncapsulationFor number: UInt16, maxBatch: Int = 64,
                            socketBuffer: Int32 = 8 << 20, waitMilliseconds: Int32 = 1000) throws {
        let (opened, port) = try Self.openUDPPair(socketBuffer: socketBuffer)
        self.init(number: number, descriptors: opened, kinds: [.udp4, .udp6], share: .whole, socketPort: port,
                  maxBatch: maxBatch, waitMilliseconds: waitMilliseconds)
    }

    private init(number: UInt16, descriptors: [Int32], kinds: [Kind], share: WorkerShare, socketPort: UInt16,
                 maxBatch: Int, waitMilliseconds: Int32) {
        self.number = number
        self.share = share
        self.descriptors = descriptors
        self.kinds = kinds
        self.socketPort = socketPort
        self.maxBatch = max(1, maxBatch)
        self.waitMilliseconds = waitMilliseconds
        drops = [UInt32](repeating: 0, count: descriptors.count)
        pollSet = .allocate(capacity: descriptors.count)
        for (i, fd) in descriptors.enumerated() { pollSet[i] = pollfd(fd: fd, events: Int16(POLLIN), revents: 0) }
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

    private static func openRaw(family: Int32, proto: Int32, socketBuffer: Int32, share: WorkerShare) throws -> Int32 {
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
            try setReceiveOptions(fd, family: family, udp: false, socketBuffer: socketBuffer, name)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }

    /// The receive buffer, SO_RXQ_OVFL and the control messages a read's headers are
    /// rebuilt from.
    private static func setReceiveOptions(_ fd: Int32, family: Int32, udp: Bool, socketBuffer: Int32, _ name: String) throws {
        var size = socketBuffer
        // FORCE needs CAP_NET_ADMIN and ignores rmem_max; fall back to the capped option.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            try setOption(fd, SOL_SOCKET, SO_RCVBUF, size, "\(name) SO_RCVBUF")
        }
        try setOption(fd, SOL_SOCKET, encshim_so_rxq_ovfl(), 1, "\(name) SO_RXQ_OVFL")
        let v6 = Int32(IPPROTO_IPV6), v4 = Int32(IPPROTO_IP)
        switch (family == AF_INET6, udp) {
        case (true, _):
            // The destination: its address (raw), or address and port (UDP).
            if udp {
                try setOption(fd, v6, encshim_ipv6_recvorigdstaddr(), 1, "\(name) IPV6_RECVORIGDSTADDR")
            } else {
                try setOption(fd, v6, IPV6_RECVPKTINFO, 1, "\(name) IPV6_RECVPKTINFO")
            }
            try setOption(fd, v6, IPV6_RECVHOPLIMIT, 1, "\(name) IPV6_RECVHOPLIMIT")
            try setOption(fd, v6, encshim_ipv6_flowinfo_option(), 1, "\(name) IPV6_FLOWINFO")
        case (false, true):
            try setOption(fd, v4, encshim_ip_recvorigdstaddr(), 1, "\(name) IP_RECVORIGDSTADDR")
            try setOption(fd, v4, IP_RECVTOS, 1, "\(name) IP_RECVTOS")
            try setOption(fd, v4, IP_RECVTTL, 1, "\(name) IP_RECVTTL")
        case (false, false):
            break   // the read starts with the header
        }
    }

    /// The IPv4 and IPv6 UDP sockets for ESP in UDP, on one port the kernel chooses for
    /// the IPv4 one (tried a few times should IPv6 have that port in use).
    private static func openUDPPair(socketBuffer: Int32) throws -> ([Int32], UInt16) {
        var lastError: Error = SystemError("bind(udp, a port free for IPv4 and IPv6)", errno: EADDRINUSE)
        for _ in 0..<8 {
            var opened: [Int32] = []
            do {
                opened.append(try openUDP(family: AF_INET, port: 0, socketBuffer: socketBuffer))
                let port = try boundPort(opened[0])
                opened.append(try openUDP(family: AF_INET6, port: port, socketBuffer: socketBuffer))
                return (opened, port)
            } catch let e as SystemError where e.errno == EADDRINUSE {
                opened.forEach(closeDescriptor)
                lastError = e
            } catch {
                opened.forEach(closeDescriptor)
                throw error
            }
        }
        throw lastError
    }

    /// A UDP socket bound to the wildcard address and `port` (0: the kernel chooses),
    /// transparent (tproxy hands it packets for other ports; CAP_NET_ADMIN); IPv6 only
    /// IPv6.
    private static func openUDP(family: Int32, port: UInt16, socketBuffer: Int32) throws -> Int32 {
        let name = family == AF_INET ? "inet udp" : "inet6 udp"
        let fd = Int32(try Syscall.check("socket(\(name))") {
            socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        })
        do {
            if family == AF_INET6 {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, "\(name) IPV6_V6ONLY")
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_TRANSPARENT, 1, "\(name) IPV6_TRANSPARENT")
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                try bind(fd, address, "\(name) [::]:\(port)")
            } else {
                try setOption(fd, Int32(IPPROTO_IP), IP_TRANSPARENT, 1, "\(name) IP_TRANSPARENT")
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                try bind(fd, address, "\(name) 0.0.0.0:\(port)")
            }
            try setReceiveOptions(fd, family: family, udp: true, socketBuffer: socketBuffer, name)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }

    /// bind(2) to a sockaddr_in or sockaddr_in6.
    private static func bind<Address>(_ fd: Int32, _ address: Address, _ what: String) throws {
        var a = address
        try Syscall.check("bind(\(what))") {
            withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
            }
        }
    }

    private static func boundPort(_ fd: Int32) throws -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try Syscall.check("getsockname(inet udp)") {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
        return UInt16(bigEndian: address.sin_port)
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
        let kind = kinds[s]
        let front = kind.front
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
            // Lengths the rebuilt headers must hold (the IPv6 payload length excludes its header).
            guard front == 0 || (length + front - (front >= 40 ? 40 : 0) <= 0xffff && info.found & ENCSHIM_RX_DESTINATION != 0) else {
                cells.add(.malformed)
                continue
            }
            buffer.setCount(front + length)
            let p = buffer.bytes
            let name = UnsafeRawPointer(names + i)
            switch kind {
            case .raw4:
                break
            case .raw6(let proto):
                writeIPv6Header(p, payloadLength: length, nextHeader: proto, source: name)
            case .udp4:
                writeIPv4Header(p, totalLength: front + length, source: name)
                writeUDPHeader(p, at: 20, length: 8 + length, source: name)
            case .udp6:
                writeIPv6Header(p, payloadLength: 8 + length, nextHeader: IPProtocol.udp, source: name)
                writeUDPHeader(p, at: 40, length: 8 + length, source: name)
            }
            batch[slot] = QueuedPacket()
            kept += 1
        }
        return .done(kept)
    }

    /// The IPv6 header in front of a read: what `info` and the source address (a
    /// sockaddr_in6) say.
    private func writeIPv6Header(_ p: UnsafeMutableRawBufferPointer, payloadLength: Int, nextHeader: UInt8,
                                 source: UnsafeRawPointer) {
        // flowinfo is in network order without the version: 4 bits version, 8 traffic class, 20 flow label.
        let flow = UInt32(bigEndian: info.flowinfo) & 0x0fff_ffff
        p.setBE32(0, 0x6000_0000 | flow)
        p.setBE16(4, UInt16(truncatingIfNeeded: payloadLength))
        p[6] = nextHeader
        p[7] = info.found & ENCSHIM_RX_HOPLIMIT != 0 ? UInt8(truncatingIfNeeded: info.hop_limit) : 64
        let address = source + Self.ipv6AddressOffset
        for j in 0..<16 { p[8 + j] = address.load(fromByteOffset: j, as: UInt8.self) }
        withUnsafeBytes(of: &info.destination) { dst in
            for j in 0..<16 { p[24 + j] = dst[j] }
        }
    }

    /// The IPv4 header in front of a UDP read: what `info` and the source address (a
    /// sockaddr_in) say, with its checksum.
    private func writeIPv4Header(_ p: UnsafeMutableRawBufferPointer, totalLength: Int, source: UnsafeRawPointer) {
        p[0] = 0x45
        p[1] = info.found & ENCSHIM_RX_TOS != 0 ? info.tos : 0
        p.setBE16(2, UInt16(truncatingIfNeeded: totalLength))
        p.setBE32(4, 0)
        p[8] = info.found & ENCSHIM_RX_HOPLIMIT != 0 ? UInt8(truncatingIfNeeded: info.hop_limit) : 64
        p[9] = IPProtocol.udp
        p.setBE16(10, 0)
        let address = source + Self.ipv4AddressOffset
        for j in 0..<4 { p[12 + j] = address.load(fromByteOffset: j, as: UInt8.self) }
        withUnsafeBytes(of: &info.destination) { dst in
            for j in 0..<4 { p[16 + j] = dst[j] }
        }
        p.setBE16(10, Checksum.compute(UnsafeRawBufferPointer(rebasing: p[0..<20])))
    }

    /// The UDP header at `at`: from the sender's port to the one it was sent to (the
    /// NAT-T port the rule matched), checksum 0.
    private func writeUDPHeader(_ p: UnsafeMutableRawBufferPointer, at: Int, length: Int, source: UnsafeRawPointer) {
        p.setBE16(at, UInt16(bigEndian: source.loadUnaligned(fromByteOffset: Self.portOffset, as: UInt16.self)))
        p.setBE16(at + 2, UInt16(bigEndian: info.destination_port))
        p.setBE16(at + 4, UInt16(truncatingIfNeeded: length))
        p.setBE16(at + 6, 0)
    }

    public func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult { .done(0) }
    public func flushVerdicts() -> IOResult { .done(0) }
}
