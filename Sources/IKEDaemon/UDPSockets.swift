// encd-iked's UDP sockets: 500 and 4500, IPv4 and IPv6, each bound to the wildcard
// address with the local address of every datagram read from IP_PKTINFO and every
// answer sent from the address the peer used. SO_MARK carries encd's decided bit
// (0x00010000, Rules/README.md) so [X] lets IKE pass in the clear.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore
import IKE

public struct IKESocketError: Error, CustomStringConvertible {
    public var description: String
}

public final class UDPSockets {
    public static let decidedMark: UInt32 = 0x0001_0000
    /// (fd, port, family)
    public private(set) var sockets: [(fd: Int32, port: UInt16, family: Int32)] = []
    var buffer = [UInt8](repeating: 0, count: 65536)

    /// Binds 500 and 4500 (`ports`) for each family that has an address here.
    public init(ports: [UInt16] = [500, 4500], families: [Int32] = [AF_INET, AF_INET6]) throws {
        for family in families {
            for port in ports {
                let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else {
                    if family == AF_INET6 { continue }  // no IPv6 here
                    throw IKESocketError(description: "socket: \(String(cString: strerror(errno)))")
                }
                var on: Int32 = 1, mark = UDPSockets.decidedMark
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
                if family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size)) }
                guard setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, socklen_t(MemoryLayout<UInt32>.size)) == 0,
                      encshim_udp_enable_pktinfo(fd, family) == 0 else {
                    close(fd)
                    throw IKESocketError(description: "SO_MARK/PKTINFO on UDP \(port): \(String(cString: strerror(errno)))")
                }
                let rc: Int32
                if family == AF_INET {
                    var a = sockaddr_in()
                    a.sin_family = sa_family_t(AF_INET)
                    a.sin_port = port.bigEndian
                    rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                } else {
                    var a = sockaddr_in6()
                    a.sin6_family = sa_family_t(AF_INET6)
                    a.sin6_port = port.bigEndian
                    rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
                }
                guard rc == 0 else {
                    let e = errno
                    close(fd)
                    if family == AF_INET6 && (e == EADDRNOTAVAIL || e == EAFNOSUPPORT) { continue }
                    throw IKESocketError(description: "bind UDP port \(port): \(String(cString: strerror(e)))")
                }
                sockets.append((fd, port, family))
            }
        }
    }

    deinit { for s in sockets { close(s.fd) } }

    /// Reads every datagram waiting on `fd`.
    public func drain(_ fd: Int32) -> [IKEDatagram] {
        guard let s = sockets.first(where: { $0.fd == fd }) else { return [] }
        var out: [IKEDatagram] = []
        var peer = encshim_udp_peer()
        while out.count < 256 {
            let n = buffer.withUnsafeMutableBytes { encshim_udp_recv(fd, $0.baseAddress, $0.count, &peer) }
            guard n >= 0 else { break }
            let family: AddressFamily = peer.family == AF_INET ? .inet : .inet6
            let (remote, local) = withUnsafeBytes(of: peer.remote) { r in
                withUnsafeBytes(of: peer.local) { l in
                    (IPAddress(family: family, bytes: r.baseAddress!), IPAddress(family: family, bytes: l.baseAddress!))
                }
            }
            out.append(IKEDatagram(local: IKEEndpoint(local, s.port), remote: IKEEndpoint(remote, peer.remote_port),
                                   bytes: Array(buffer[0..<n])))
        }
        return out
    }

    /// Sends from the datagram's local address and port.
    @discardableResult
    public func send(_ d: IKEDatagram) -> Bool {
        let family = d.remote.address.family == .inet ? AF_INET : AF_INET6
        guard let s = sockets.first(where: { $0.port == d.local.port && $0.family == family }) else { return false }
        var peer = encshim_udp_peer()
        peer.family = family
        peer.remote_port = d.remote.port
        withUnsafeMutableBytes(of: &peer.remote) { d.remote.address.write(to: $0.baseAddress!) }
        withUnsafeMutableBytes(of: &peer.local) { d.local.address.write(to: $0.baseAddress!) }
        return d.bytes.withUnsafeBytes { encshim_udp_send(s.fd, $0.baseAddress, $0.count, &peer) } == d.bytes.count
    }
}
