// TUNDevice: a Linux TUN interface (IFF_TUN | IFF_NO_PI, so reads and writes are bare
// IP packets). Creating it needs CAP_NET_ADMIN; link state, MTU and routes are set
// through LinkControl (rtnetlink), not here.
//
// Stages: read (kernel -> encd, one packet per read(2)) and write (encd -> kernel).
// One descriptor may be read by one thread and written by another; with
// `multiQueue` each worker opens its own queue (same name, own descriptor).

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import EncCore

public final class TUNDevice: PacketDevice {
    public let name: String
    public let fileDescriptor: Int32
    /// A TAP device carries Ethernet frames (IFF_TAP); encd uses the frame's source
    /// address to tell the kernel's queue which SA carried a packet it injects.
    public let isTAP: Bool
    /// IFF_VNET_HDR: every write (and read) starts with a struct virtio_net_hdr, which
    /// may describe a GSO frame (EncCore/FrameCoalescing).
    public let vnetHeader: Bool

    /// Opens /dev/net/tun and attaches to (creating if needed) the TUN interface `name`.
    /// The descriptor is non-blocking unless `nonBlocking` is false.
    public init(name: String = "enc0", tap: Bool = false, multiQueue: Bool = false, nonBlocking: Bool = true,
                vnetHeader: Bool = false) throws {
        guard !name.isEmpty, name.utf8.count < Int(encshim_ifnamsiz()), !name.contains("/") else {
            throw KernelConfigError("interface name \"\(name)\" must be 1-\(encshim_ifnamsiz() - 1) bytes without '/'")
        }
        let fd = Int32(try Syscall.check("open(/dev/net/tun)") { open("/dev/net/tun", O_RDWR | O_CLOEXEC) })
        var flags = (tap ? encshim_iff_tap() : encshim_iff_tun()) | encshim_iff_no_pi()
        if multiQueue { flags |= encshim_iff_multi_queue() }
        if vnetHeader { flags |= encshim_iff_vnet_hdr() }
        var chosen = [CChar](repeating: 0, count: Int(encshim_ifnamsiz()))
        do {
            try Syscall.check("ioctl(TUNSETIFF, \(name))") { encshim_tun_set_iff(fd, name, flags, &chosen) }
            if nonBlocking {
                let old = try Syscall.check("fcntl(F_GETFL, \(name))") { fcntl(fd, F_GETFL) }
                try Syscall.check("fcntl(F_SETFL O_NONBLOCK, \(name))") { fcntl(fd, F_SETFL, Int32(old) | O_NONBLOCK) }
            }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        self.fileDescriptor = fd
        self.name = String(cString: chosen)
        self.isTAP = tap
        self.vnetHeader = vnetHeader
    }

    /// For a TAP device: sets its MAC address and IFF_NOARP (no neighbour resolution:
    /// the kernel addresses frames to the device's own MAC).
    public func configureEthernet(address mac: [UInt8]) throws {
        precondition(mac.count == 6)
        let sock = Int32(try Syscall.check("socket(AF_INET, SOCK_DGRAM)") { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        defer { close(sock) }
        _ = try Syscall.check("ioctl(SIOCSIFHWADDR, \(name))") { mac.withUnsafeBufferPointer { encshim_set_hwaddr(sock, name, $0.baseAddress) } }
        _ = try Syscall.check("ioctl(SIOCSIFFLAGS IFF_NOARP, \(name))") { encshim_set_noarp(sock, name) }
    }

    deinit { closeDescriptor(fileDescriptor) }

    /// Sets the device's transmit queue length: how many frames routing may send into
    /// the device before the reader takes them (beyond that the device drops them).
    public func setTransmitQueueLength(_ length: Int32) throws {
        let sock = Int32(try Syscall.check("socket(AF_INET, SOCK_DGRAM)") { socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        defer { close(sock) }
        _ = try Syscall.check("ioctl(SIOCSIFTXQLEN, \(name), \(length))") { encshim_set_txqlen(sock, name, length) }
    }

    /// TUNSETOFFLOAD flags (linux/if_tun.h; Debian bookworm's headers lack the USO ones,
    /// which came with Linux 6.2).
    public enum Offload {
        public static let checksum: UInt32 = 0x01, tso4: UInt32 = 0x02, tso6: UInt32 = 0x04, tsoECN: UInt32 = 0x08
        public static let uso4: UInt32 = 0x20, uso6: UInt32 = 0x40
    }

    /// Lets the kernel hand reads GSO frames and packets whose TCP/UDP checksum is
    /// left to finish (needs IFF_VNET_HDR): TCP segmentation for IPv4 and IPv6 with
    /// ECN, and UDP segmentation where the kernel has it. Returns the flags taken.
    @discardableResult
    public func enableReadOffloads() throws -> UInt32 {
        precondition(vnetHeader, "offloads need IFF_VNET_HDR")
        let tcp = Offload.checksum | Offload.tso4 | Offload.tso6 | Offload.tsoECN
        if encshim_tun_set_offload(fileDescriptor, tcp | Offload.uso4 | Offload.uso6) == 0 { return tcp | Offload.uso4 | Offload.uso6 }
        _ = try Syscall.check("ioctl(TUNSETOFFLOAD, \(name))") { encshim_tun_set_offload(fileDescriptor, tcp) }
        return tcp
    }

    /// For a multi-queue device: the kernel sends every frame to queue
    /// ((mark & mask) >> shift) % queues (an eBPF steering program; needs CAP_BPF or
    /// CAP_SYS_ADMIN), so one queue's reader sees every packet of a given mark value.
    /// `queues` should be the number of queues attached; the kernel takes the result
    /// modulo the queues it has.
    public func steerByMark(mask: UInt32, shift: UInt32, queues: Int) throws {
        guard queues >= 1, queues <= 0xffff, shift < 32 else {
            throw KernelConfigError("steering \(name): \(queues) queues, shift \(shift) out of range")
        }
        _ = try Syscall.check("bpf(BPF_PROG_LOAD) + ioctl(TUNSETSTEERINGEBPF, \(name))") {
            encshim_tun_steer_by_mark(fileDescriptor, mask, shift, UInt32(queues))
        }
    }

    public func read(into buffer: PacketBuffer, headroom: Int, tailroom: Int) -> IOResult {
        let room = buffer.capacity - headroom - tailroom
        guard headroom >= 0, room > 0 else { return .failed(EMSGSIZE) }
        buffer.reset(headroom: headroom)
        let result = Syscall.retry { Glibc.read(fileDescriptor, buffer.base + headroom, room) }
        if case .done(let n) = result { buffer.setCount(n) }
        return result
    }

    public func write(from buffer: PacketBuffer) -> IOResult {
        let bytes = buffer.bytes
        return Syscall.retry { Glibc.write(fileDescriptor, bytes.baseAddress, bytes.count) }
    }
}
