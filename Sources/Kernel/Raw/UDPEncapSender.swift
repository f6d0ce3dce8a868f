// UDPEncapSender: the ipsec-out worker's sender. UDP-encapsulated ESP goes out in runs,
// one UDP GSO send each (EncCore/UDPSegmentBatch.swift says what may form a run);
// everything else, and what cannot be batched, goes through the raw sockets as before,
// after the run in progress, so packets leave in the order encd gave them.
//
// The port. The NAT-T port (4500) belongs to the IKE daemon, which reads IKE and
// keepalives from it; a second socket on it must never take one of them. encd's
// socket is bound to the loopback address (127.0.0.1 or ::1) at that port, with
// SO_REUSEADDR beside the daemon's wildcard socket (encd-iked sets it too): a datagram
// for any other address of the host can only match the wildcard one, and a filter
// that keeps nothing discards what reaches the loopback one. Each send names its real
// source address (IP_PKTINFO / IPV6_PKTINFO). When that bind is refused (the port
// held without SO_REUSEADDR), that family and port keep using the raw socket; an IKE
// daemon without SO_REUSEADDR that starts after encd's first UDP-encapsulated packet
// would be refused its bind instead (IP_FREEBIND: bound even before lo has 127.0.0.1).
//
// The rest of the header: SO_MARK = encd's bypass mark (as the raw sockets), TOS/TTL
// or traffic class/hop limit per send, DF set and path MTU ignored (PMTUDISC_PROBE;
// IPv6 DONTFRAG): a datagram larger than the device takes fails with EMSGSIZE instead
// of being fragmented, as a raw send does; no automatic IPv6 flow label (encd writes 0).
//
// Results: a datagram of a run is counted when the run is sent (`flush`), not when it
// is handed over; a run the kernel refuses whole (EINVAL: no UDP_SEGMENT here, or a
// segment larger than the device takes; EMSGSIZE; EIO: older kernels refuse GSO
// through a device without checksum offload) is sent again one datagram at a time, so
// each failure is counted as the raw socket would have; EINVAL or EIO with every
// datagram then sent means runs cannot work here, and they stop. What is sent again is
// the same bytes (no new sequence number, no new nonce): at worst the peer sees a
// datagram twice and its replay window drops the copy.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore

/// What happened to the datagrams of the runs sent since the last `flush`.
public struct SendTally: Equatable, Sendable {
    public var sent = 0
    /// ENOBUFS / EAGAIN: the socket's or the device's queue was full.
    public var full = 0
    /// EMSGSIZE: larger than the outgoing device takes.
    public var tooBig = 0
    public var failed = 0
    /// Sends that carried more than one datagram.
    public var runs = 0

    public init() {}
}

public final class UDPEncapSender: PacketSender {
    public let raw: RawSocketSender
    public let mark: UInt32
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var batch: UDPSegmentBatch
    @exclusivity(unchecked) private var tally = SendTally()
    /// Send-only sockets by family and port: fd, or -1 when the bind was refused.
    @exclusivity(unchecked) private var sockets: [(isIPv6: Bool, port: UInt16, fd: Int32)] = []
    /// The run's socket.
    @exclusivity(unchecked) private var runSocket: Int32 = -1
    /// The run's source and destination in network order, for the send (32 bytes).
    private let addresses = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)
    private static let maxSockets = 16

    public init(raw: RawSocketSender, maxSegments: Int = UDPSegmentBatch.kernelMaxSegments) {
        self.raw = raw
        self.mark = raw.mark
        batch = UDPSegmentBatch(maxSegments: maxSegments)
        sockets.reserveCapacity(Self.maxSockets)
    }

    deinit {
        for s in sockets where s.fd >= 0 { closeDescriptor(s.fd) }
        addresses.deallocate()
    }

    /// The ports and families with a send-only socket now (for tests and the log).
    public var boundPorts: [(isIPv6: Bool, port: UInt16)] {
        sockets.filter { $0.fd >= 0 }.map { ($0.isIPv6, $0.port) }
    }

    public func send(_ buffer: PacketBuffer) -> IOResult {
        let packet = buffer.bytes
        guard let (h, payloadStart) = UDPSegmentBatch.header(of: packet),
              let fd = socket(isIPv6: h.isIPv6, port: h.sourcePort) else {
            sendRun()
            return raw.send(buffer)
        }
        if batch.count > 0 {
            if fd == runSocket, batch.append(packet, header: h, payloadStart: payloadStart) == .added {
                return .done(buffer.count)
            }
            sendRun()
        }
        runSocket = fd
        _ = batch.append(packet, header: h, payloadStart: payloadStart)     // an empty run takes any datagram
        return .done(buffer.count)
    }

    /// Sends the run in progress; what happened to every datagram since the last call.
    public func flush() -> SendTally {
        sendRun()
        let t = tally
        tally = SendTally()
        return t
    }

    private func sendRun() {
        let n = batch.count
        guard n > 0 else { return }
        defer { batch.reset() }
        let result = transmit(segment: n > 1 ? batch.segmentSize : 0,
                              UnsafeRawBufferPointer(start: batch.storage.baseAddress, count: batch.length))
        if result == 0 {
            tally.sent += n
            if n > 1 { tally.runs += 1 }
            return
        }
        guard n > 1, result == EINVAL || result == EMSGSIZE || result == EIO else {
            count(result, n)
            return
        }
        var allSent = true
        for i in 0..<n {
            let e = transmit(segment: 0, batch.datagram(i))
            if e == 0 { tally.sent += 1 } else { allSent = false; count(e, 1) }
        }
        // No UDP_SEGMENT in this kernel (EINVAL), or a device without checksum offload on
        // kernels that refuse GSO there (EIO): runs stop for this sender.
        if allSent && result != EMSGSIZE { batch.maxSegments = 1 }
    }

    private func count(_ e: Int32, _ n: Int) {
        switch e {
        case ENOBUFS, EAGAIN: tally.full += n
        case EMSGSIZE: tally.tooBig += n
        default: tally.failed += n
        }
    }

    /// One sendmsg of the run's header; 0 or errno.
    private func transmit(segment: Int, _ payload: UnsafeRawBufferPointer) -> Int32 {
        let h = batch.header
        h.source.write(to: addresses)
        h.destination.write(to: addresses + 16)
        let r = Syscall.retry {
            Int(encshim_udp_send_run(runSocket, h.isIPv6 ? 1 : 0, addresses, addresses + 16,
                                     h.destinationPort, Int32(h.trafficClass), Int32(h.hopLimit),
                                     UInt16(truncatingIfNeeded: segment), payload.baseAddress, payload.count))
        }
        switch r {
        case .done: return 0
        case .wouldBlock: return EAGAIN
        case .failed(let e): return e
        }
    }

    /// The send-only socket of `port` for the family, opened the first time; nil when
    /// its bind was refused (then that family and port use the raw socket).
    private func socket(isIPv6: Bool, port: UInt16) -> Int32? {
        for i in sockets.indices where sockets[i].isIPv6 == isIPv6 && sockets[i].port == port {
            return sockets[i].fd >= 0 ? sockets[i].fd : nil     // (indices: an iterator over tuples allocates in debug builds)
        }
        guard sockets.count < Self.maxSockets else { return nil }
        let fd = Self.open(isIPv6: isIPv6, port: port, mark: mark)
        sockets.append((isIPv6, port, fd))
        return fd >= 0 ? fd : nil
    }

    /// A UDP socket bound to the loopback address at `port`, send-only; -1 when refused.
    static func open(isIPv6: Bool, port: UInt16, mark: UInt32) -> Int32 {
        let family = isIPv6 ? AF_INET6 : AF_INET
        let fd = Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var on: Int32 = 1, off: Int32 = 0, value = mark, probe = encshim_ip_pmtudisc_probe()
        let size = socklen_t(MemoryLayout<Int32>.size)
        var ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size) == 0
            && setsockopt(fd, SOL_SOCKET, SO_MARK, &value, socklen_t(MemoryLayout<UInt32>.size)) == 0
            && setsockopt(fd, Int32(IPPROTO_IP), encshim_ip_freebind(), &on, size) == 0
            && encshim_attach_drop_all(fd) == 0
        if isIPv6 {
            ok = ok && setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, size) == 0
                && setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_MTU_DISCOVER, &probe, size) == 0
                && setsockopt(fd, Int32(IPPROTO_IPV6), encshim_ipv6_dontfrag(), &on, size) == 0
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), encshim_ipv6_autoflowlabel(), &off, size)   // before Linux 4.10: absent
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            a.sin6_addr.__in6_u.__u6_addr8.15 = 1
            ok = ok && withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            } == 0
        } else {
            ok = ok && setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &probe, size) == 0
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            ok = ok && withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        guard ok else {
            closeDescriptor(fd)
            return -1
        }
        return fd
    }
}
