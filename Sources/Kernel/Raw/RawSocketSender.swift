// RawSocketSender: IPv4 (IPPROTO_RAW, IP_HDRINCL) and IPv6 (IPPROTO_RAW, IPV6_HDRINCL)
// raw sockets. Both carry SO_MARK = encd's bypass mark, so what encd sends passes the
// [X] chain without being queued again, while the admin's rules on the real interface
// (filter, masquerade) still apply to it.
//
// Stages: 1. read the destination from the packet header 2. sendto. With header
// inclusion the kernel does not fragment: a packet larger than the route's MTU fails
// with EMSGSIZE (enc0's MTU is sized so this does not happen).
//
// Path MTU: both sockets use IP(V6)_PMTUDISC_PROBE, so the kernel checks what encd
// sends against the device MTU, not against a path MTU learned for the destination.
// In transport mode the inner and the outer packet share their destination: the MTU
// the kernel learns for the cleartext (enc0's MTU, when a local sender was refused at
// enc0) lands on the same route as the ESP/AH packets, which are larger by the IPsec
// overhead and would all be refused (IpFragFails) if that MTU applied to them.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore

public final class RawSocketSender: PacketSender {
    public let mark: UInt32
    public let ipv4Descriptor: Int32
    public let ipv6Descriptor: Int32
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var v4Address = sockaddr_in()
    @exclusivity(unchecked) private var v6Address = sockaddr_in6()

    /// Opens both sockets with SO_MARK `mark` (needs CAP_NET_RAW and CAP_NET_ADMIN).
    public init(mark: UInt32) throws {
        self.mark = mark
        let v4 = try RawSocketSender.open(family: AF_INET, level: Int32(IPPROTO_IP), hdrincl: IP_HDRINCL,
                                          mtuDiscover: (IP_MTU_DISCOVER, IP_PMTUDISC_PROBE), mark: mark, name: "inet")
        do {
            ipv6Descriptor = try RawSocketSender.open(family: AF_INET6, level: Int32(IPPROTO_IPV6), hdrincl: IPV6_HDRINCL,
                                                      mtuDiscover: (IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE),
                                                      mark: mark, name: "inet6")
        } catch {
            closeDescriptor(v4)
            throw error
        }
        ipv4Descriptor = v4
        v4Address.sin_family = sa_family_t(AF_INET)
        v6Address.sin6_family = sa_family_t(AF_INET6)
    }

    deinit {
        closeDescriptor(ipv4Descriptor)
        closeDescriptor(ipv6Descriptor)
    }

    private static func open(family: Int32, level: Int32, hdrincl: Int32, mtuDiscover: (option: Int32, value: Int32),
                             mark: UInt32, name: String) throws -> Int32 {
        let fd = Int32(try Syscall.check("socket(\(name), SOCK_RAW, IPPROTO_RAW)") {
            socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        })
        do {
            var one: Int32 = 1
            var value = mark
            try Syscall.check("setsockopt(\(name) raw, HDRINCL)") {
                setsockopt(fd, level, hdrincl, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try Syscall.check("setsockopt(\(name) raw, SO_MARK 0x\(String(mark, radix: 16)))") {
                setsockopt(fd, SOL_SOCKET, SO_MARK, &value, socklen_t(MemoryLayout<UInt32>.size))
            }
            var probe = mtuDiscover.value
            try Syscall.check("setsockopt(\(name) raw, MTU_DISCOVER PMTUDISC_PROBE)") {
                setsockopt(fd, level, mtuDiscover.option, &probe, socklen_t(MemoryLayout<Int32>.size))
            }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }

    public func send(_ buffer: PacketBuffer) -> IOResult {
        let bytes = buffer.bytes
        guard let p = bytes.baseAddress, bytes.count >= 1 else { return .failed(EINVAL) }
        switch p.load(as: UInt8.self) >> 4 {
        case 4:
            guard bytes.count >= 20 else { return .failed(EINVAL) }
            v4Address.sin_addr.s_addr = p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
            return withUnsafePointer(to: &v4Address) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    Syscall.retry { sendto(ipv4Descriptor, p, bytes.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
        case 6:
            guard bytes.count >= 40 else { return .failed(EINVAL) }
            withUnsafeMutableBytes(of: &v6Address.sin6_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(start: p + 24, count: 16)) }
            return withUnsafePointer(to: &v6Address) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    Syscall.retry { sendto(ipv6Descriptor, p, bytes.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                }
            }
        default:
            return .failed(EAFNOSUPPORT)
        }
    }
}
