// NetlinkSocket: a libmnl socket for control-path requests (rtnetlink, nf_tables
// batches). Requests carry NLM_F_ACK; `transact` sends them and waits for one ack
// per acked message, throwing the first kernel error with the request's description
// and the kernel's extended-ack text when it gives one.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import CEncShim

final class NetlinkSocket {
    let handle: OpaquePointer
    let portID: UInt32
    let busName: String
    private var nextSeq: UInt32
    private var receiveBuffer: [UInt8]

    init(bus: Int32, busName: String) throws {
        self.busName = busName
        let handle = try Syscall.check("mnl_socket_open(\(busName))") { mnl_socket_open(bus) }
        do {
            try Syscall.check("mnl_socket_bind(\(busName))") { mnl_socket_bind(handle, 0, pid_t(MNL_SOCKET_AUTOPID)) }
            var one: Int32 = 1
            // Extended acks carry the kernel's own error text; older kernels lack it, so ignore failure.
            _ = mnl_socket_setsockopt(handle, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = mnl_socket_setsockopt(handle, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
            // A kernel that never answers must not hang the daemon's control path.
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            let fd = mnl_socket_get_fd(handle)
            try Syscall.check("setsockopt(SO_RCVTIMEO, \(busName))") {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
        } catch {
            mnl_socket_close(handle)
            throw error
        }
        self.handle = handle
        portID = mnl_socket_get_portid(handle)
        nextSeq = UInt32(truncatingIfNeeded: time(nil))
        receiveBuffer = [UInt8](repeating: 0, count: 1 << 16)
    }

    deinit { mnl_socket_close(handle) }

    var fileDescriptor: Int32 { mnl_socket_get_fd(handle) }

    /// A fresh sequence number for the next message.
    func sequence() -> UInt32 {
        nextSeq &+= 1
        return nextSeq
    }

    /// Sends `bytes` (one or more netlink messages) and waits for the acks of the
    /// messages listed in `acked` (sequence -> description). Throws the first error.
    /// An error for a message in `unacked` (e.g. a batch header) ends the wait too.
    func transact(_ bytes: [UInt8], acked: [UInt32: String], unacked: [UInt32: String] = [:]) throws {
        try send(bytes)
        var waiting = acked
        var firstError: Error?
        while !waiting.isEmpty {
            try receive { m in
                guard let code = m.errorCode else { return }
                let what = waiting.removeValue(forKey: m.seq) ?? (code != 0 ? unacked[m.seq] : nil)
                if code != 0, unacked[m.seq] != nil { waiting.removeAll() }
                if let what, code != 0, firstError == nil { firstError = m.error(what) }
            }
        }
        if let error = firstError { throw error }
    }

    /// Sends one acked request that the kernel answers with one message (a GET
    /// without NLM_F_DUMP) and returns that message; throws the kernel's error.
    func query(_ bytes: [UInt8], seq: UInt32, what: String) throws -> [UInt8] {
        try send(bytes)
        var reply: [UInt8]?
        var acked = false
        while !acked {
            try receive { m in
                guard m.seq == seq else { return }
                if let code = m.errorCode {
                    if code != 0 { throw m.error(what) }
                    acked = true
                } else if reply == nil {
                    reply = Array(m.bytes)
                }
            }
        }
        guard let reply else { throw SystemError("\(what): no answer", errno: ENOENT) }
        return reply
    }

    private func send(_ bytes: [UInt8]) throws {
        let sent = try bytes.withUnsafeBytes { raw in
            try Syscall.check("sendto(\(busName))") { mnl_socket_sendto(handle, raw.baseAddress, raw.count) }
        }
        guard sent == bytes.count else { throw SystemError("sendto(\(busName)) short write", errno: EMSGSIZE) }
    }

    /// One received netlink message, valid during the `receive` callback.
    struct Message {
        let bytes: UnsafeRawBufferPointer
        var type: UInt16 { bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) }
        var flags: UInt16 { bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self) }
        var seq: UInt32 { bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self) }
        /// For NLMSG_ERROR: 0 (an ack) or the negated errno; nil for other messages.
        var errorCode: Int32? {
            guard type == UInt16(NLMSG_ERROR), bytes.count >= 20 else { return nil }
            return bytes.loadUnaligned(fromByteOffset: 16, as: Int32.self)
        }
        /// The error this NLMSG_ERROR reports for the request described by `what`.
        func error(_ what: String) -> SystemError {
            let text = NetlinkSocket.extackMessage(bytes, offset: 0, length: bytes.count, flags: flags)
            return SystemError(text.map { "\(what) [kernel: \($0)]" } ?? what, errno: -(errorCode ?? 0))
        }
    }

    /// Reads one datagram and calls `body` with each message in it.
    private func receive(_ body: (Message) throws -> Void) throws {
        let n = try receiveBuffer.withUnsafeMutableBytes { raw in
            try Syscall.check("recv(\(busName))") { recv(fileDescriptor, raw.baseAddress, raw.count, 0) }
        }
        try receiveBuffer.withUnsafeBytes { raw in
            var offset = 0
            while offset + 16 <= n {
                let len = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                guard len >= 16, offset + len <= n else {
                    throw SystemError("recv(\(busName)): truncated netlink message", errno: EPROTO)
                }
                try body(Message(bytes: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + len)])))
                offset += (len + 3) & ~3
            }
        }
    }

    /// The NLMSGERR_ATTR_MSG text of an error ack, if the kernel attached one.
    static func extackMessage(_ raw: UnsafeRawBufferPointer, offset: Int, length: Int, flags: UInt16) -> String? {
        guard flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return nil }
        // nlmsghdr(16) + error(4) + the request's header (16), plus its payload unless capped.
        var tlv = offset + 20 + 16
        if flags & UInt16(NLM_F_CAPPED) == 0 {
            let inner = Int(raw.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
            tlv = offset + 20 + ((inner + 3) & ~3)
        }
        let end = offset + length
        while tlv + 4 <= end {
            let alen = Int(raw.loadUnaligned(fromByteOffset: tlv, as: UInt16.self))
            let atype = raw.loadUnaligned(fromByteOffset: tlv + 2, as: UInt16.self) & cnf_nla_type_mask()
            guard alen >= 4, tlv + alen <= end else { return nil }
            if atype == UInt16(NLMSGERR_ATTR_MSG.rawValue) {
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(tlv + 4)..<(tlv + alen)])
                let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                return text.isEmpty ? nil : text
            }
            tlv += (alen + 3) & ~3
        }
        return nil
    }
}
