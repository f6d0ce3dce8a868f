// NFQueue: one NFQUEUE bound over a libmnl netfilter socket.
//
// Stages: 1. recvmmsg: up to a batch of netlink datagrams, each straight into one
// PacketBuffer (no copy; the netlink headers land in the buffer's headroom)
// 2. parse each datagram's messages (QueueParser), count errors and anomalies
// 3. verdicts are written into one preallocated buffer and 4. sent with one send(2).
// Packet order is the kernel's; one queue belongs to one worker thread.

#if canImport(Glibc)
import Glibc
#endif
import CEncShim
import CNetfilter
import EncCore

public final class NFQueue: PacketQueue {
    public let config: QueueConfig
    public var number: UInt16 { config.number }
    /// Written by this queue's worker, read by the control thread.
    let cells = QueueCounterCells()
    public var counters: QueueCounters { cells.snapshot }
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    private let socket: NetlinkSocket
    private let maxBatch: Int
    private let headers: UnsafeMutablePointer<encshim_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let parser = QueueParser()
    private let verdicts: UnsafeMutableRawPointer
    private let verdictCapacity = 128 * 1024
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    @exclusivity(unchecked) private var verdictLength = 0

    /// Binds queue `config.number` (EBUSY when another process holds it). Bind the
    /// queues before installing the rules that feed them. `receiveTimeout` bounds a
    /// waiting receive so the caller can check for shutdown.
    public init(_ config: QueueConfig, maxBatch: Int = 64, receiveTimeout: timeval = timeval(tv_sec: 1, tv_usec: 0)) throws {
        self.config = config
        self.maxBatch = max(1, maxBatch)
        socket = try NetlinkSocket(bus: NETLINK_NETFILTER, busName: "nfqueue \(config.number)")
        var size = config.socketBuffer
        let fd = socket.fileDescriptor
        // FORCE needs CAP_NET_ADMIN and ignores rmem_max; fall back to the capped option.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            try Syscall.check("setsockopt(SO_RCVBUF, nfqueue \(config.number))") {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        let seq = socket.sequence()
        _ = socket.sequence()  // the parameters message uses seq + 1
        try socket.transact(QueueMessages.bind(config, seq: seq),
                            acked: [seq: "bind NFQUEUE \(config.number)",
                                    seq &+ 1: "configure NFQUEUE \(config.number) (copy packet, maxlen \(config.maxLength), flags 0x\(String(config.flags, radix: 16)))"])
        var timeout = receiveTimeout
        try Syscall.check("setsockopt(SO_RCVTIMEO, nfqueue \(config.number))") {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        headers = .allocate(capacity: self.maxBatch)
        headers.initialize(repeating: encshim_mmsghdr(), count: self.maxBatch)
        iovecs = .allocate(capacity: self.maxBatch)
        iovecs.initialize(repeating: iovec(), count: self.maxBatch)
        verdicts = .allocate(byteCount: verdictCapacity, alignment: 16)
    }

    deinit {
        headers.deallocate()
        iovecs.deallocate()
        parser.deallocate()
        verdicts.deallocate()
        // Closing the socket unbinds the queue; the kernel drops what it still holds.
    }

    public func receive(into batch: QueueBatch, wait: Bool) -> IOResult {
        batch.count = 0
        let slots = min(batch.capacity, maxBatch)
        for i in 0..<slots {
            let buffer = batch.buffers[i]
            iovecs[i].iov_base = buffer.base + batch.headroom
            iovecs[i].iov_len = buffer.capacity - batch.headroom
            headers[i].msg_hdr = msghdr()
            headers[i].msg_hdr.msg_iov = iovecs + i
            headers[i].msg_hdr.msg_iovlen = 1
            headers[i].msg_len = 0
        }
        let flags = wait ? Int32(MSG_WAITFORONE) : Int32(MSG_DONTWAIT)
        let fd = socket.fileDescriptor
        let result = Syscall.retry { encshim_recvmmsg(fd, headers, UInt32(slots), flags) }
        guard case .done(let datagrams) = result else {
            if case .failed(ENOBUFS) = result {
                cells.add(.overruns)
                return .done(0)
            }
            return result
        }
        var packets = 0
        for slot in 0..<datagrams {
            packets = parseDatagram(slot: slot, length: Int(headers[slot].msg_len), batch: batch, packets: packets)
        }
        batch.count = packets
        cells.add(.received, UInt64(packets))
        return .done(packets)
    }

    /// Parses the netlink messages of datagram `slot`; its first packet becomes batch
    /// entry `packets` (the buffers are swapped so entry i always owns buffers[i]).
    private func parseDatagram(slot: Int, length: Int, batch: QueueBatch, packets: Int) -> Int {
        let buffer = batch.buffers[slot]
        let start = buffer.base + batch.headroom
        var taken = false
        let whole = QueueParser.walk(UnsafeRawBufferPointer(start: start, count: length), parser: parser) { kind, meta, offset in
            switch kind {
            case .packet(let at, let count):
                if taken {
                    // The kernel sends one packet per datagram; should it ever send more, the
                    // extra ones have no buffer here and are dropped (counted).
                    cells.add(.batchOverflowDrops)
                    _ = setVerdict(.drop, id: meta.id, payload: nil)
                } else {
                    taken = true
                    buffer.reset(headroom: batch.headroom + offset + at)
                    buffer.setCount(count)
                    batch.swapBuffers(slot, packets)
                    batch[packets] = meta
                }
            case .error(let code):
                if code != 0 { cells.add(.verdictErrors) }
            case .malformed:
                cells.add(.malformed)
            case .ignored:
                break
            }
        }
        if !whole { cells.add(.malformed) }
        return taken ? packets + 1 : packets
    }

    public func setVerdict(_ verdict: QueueVerdict, id: UInt32, payload: PacketBuffer?) -> IOResult {
        let payloadCount = payload?.count ?? 0
        let need = QueueMessages.verdictOverhead + payloadCount
        guard need <= verdictCapacity else { return .failed(EMSGSIZE) }
        if verdictLength + need > verdictCapacity {
            let flushed = flushVerdicts()
            if case .failed = flushed { return flushed }
        }
        let bytes = payload.map { UnsafeRawBufferPointer($0.bytes) }
        verdictLength += QueueMessages.putVerdict(at: verdicts + verdictLength, queue: config.number, id: id,
                                                  verdict: verdict, payload: bytes)
        return .done(0)
    }

    public func flushVerdicts() -> IOResult {
        guard verdictLength > 0 else { return .done(0) }
        let fd = socket.fileDescriptor
        let length = verdictLength
        verdictLength = 0
        return Syscall.retry { Glibc.send(fd, verdicts, length, 0) }
    }
}

extension QueueBatch {
    func swapBuffers(_ i: Int, _ j: Int) {
        if i != j { buffers.swapAt(i, j) }
    }
}
