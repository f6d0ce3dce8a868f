import Glibc
import Testing
import EncCore
@testable import Kernel

/// Builds netlink bytes for parser tests.
struct NetlinkBytes {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xff), UInt8(v >> 8)] }
    mutating func attr(_ type: UInt16, _ payload: [UInt8]) {
        u16(UInt16(4 + payload.count)); u16(type)
        bytes += payload
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
}

@Suite struct QueueTests {
    /// An NFQNL_MSG_PACKET as the kernel sends it (attribute numbers from nfnetlink_queue.h).
    static func packetMessage(payload: [UInt8]) -> [UInt8] {
        var body = NetlinkBytes()
        body.bytes = [2, 0, 0, 0]  // nfgenmsg: AF_INET, v0, queue 0
        body.attr(1, NetlinkBytes.be32(42) + [0x08, 0x00, 3])  // PACKET_HDR: id 42, IPv4, NF_INET_LOCAL_OUT
        body.attr(3, NetlinkBytes.be32(0x0001_0000))  // MARK
        body.attr(6, NetlinkBytes.be32(4))  // IFINDEX_OUTDEV
        var ct = NetlinkBytes()
        ct.attr(8, NetlinkBytes.be32(0x77))  // CTA_MARK
        body.attr(11 | 0x8000, ct.bytes)  // CT, nested
        body.attr(12, NetlinkBytes.be32(2))  // CT_INFO: IP_CT_NEW
        body.attr(13, NetlinkBytes.be32(1500))  // CAP_LEN
        body.attr(10, payload)  // PAYLOAD
        var msg = NetlinkBytes()
        msg.bytes = NetlinkBytes.be32(0).reversed()  // placeholder length (fixed below)
        msg.u16(0x0300); msg.u16(0)  // type NFNL_SUBSYS_QUEUE<<8 | NFQNL_MSG_PACKET, flags
        msg.bytes += [0, 0, 0, 0, 0, 0, 0, 0]  // seq, pid
        msg.bytes += body.bytes
        let len = UInt32(msg.bytes.count)
        msg.bytes.replaceSubrange(0..<4, with: [UInt8(len & 0xff), UInt8(len >> 8), 0, 0])
        return msg.bytes
    }

    @Test func parserReadsMetadataAndLocatesPayload() {
        let payload: [UInt8] = Array(0..<20)
        let msg = QueueTests.packetMessage(payload: payload)
        let parser = QueueParser()
        defer { parser.deallocate() }
        var meta = QueuedPacket()
        let kind = msg.withUnsafeBytes { raw in
            parser.parse(raw.baseAddress!, into: &meta)
        }
        guard case .packet(let offset, let length) = kind else {
            Issue.record("expected a packet, got \(kind)")
            return
        }
        #expect(length == 20)
        #expect(Array(msg[offset..<(offset + length)]) == payload as [UInt8])
        #expect(meta.id == 42)
        #expect(meta.hwProtocol == 0x0800)
        #expect(meta.hook == 3)
        #expect(meta.mark == 0x1_0000)
        #expect(meta.outInterface == 4)
        #expect(meta.inInterface == 0)
        #expect(meta.conntrackMark == 0x77)
        #expect(meta.conntrackInfo == 2)
        #expect(meta.isTruncated)
        #expect(meta.originalLength == 1500)
    }

    @Test func parserReportsErrorsAndMalformedMessages() {
        let parser = QueueParser()
        defer { parser.deallocate() }
        var meta = QueuedPacket()
        // NLMSG_ERROR with error -ENOENT
        var err: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        err += withUnsafeBytes(of: Int32(-ENOENT)) { Array($0) } + [UInt8](repeating: 0, count: 16)
        let kind = err.withUnsafeBytes { parser.parse($0.baseAddress!, into: &meta) }
        #expect(kind == .error(-ENOENT))
        // A packet message without NFQA_PACKET_HDR
        let msg: [UInt8] = [20, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
        let bad = msg.withUnsafeBytes { parser.parse($0.baseAddress!, into: &meta) }
        #expect(bad == .malformed)
    }

    /// Found by FuzzQueue: libmnl walks attributes up to the message's length rounded up
    /// to 4, so a last message with an unaligned nlmsg_len could carry a payload
    /// attribute reaching up to 3 bytes past the end of the datagram.
    @Test func walkNeverLocatesAPayloadPastTheDatagram() {
        // As the kernel sends it: the payload attribute unpadded, the message ending with it.
        var real: [UInt8] = [37, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
        real += [11, 0, 1, 0] + NetlinkBytes.be32(7) + [0x08, 0x00, 3, 0]
        real += [5, 0, 10, 0, 0xaa]
        let parser0 = QueueParser()
        defer { parser0.deallocate() }
        var lengths: [Int] = []
        let whole0 = real.withUnsafeBytes { raw in
            QueueParser.walk(raw, parser: parser0) { kind, meta, _ in
                if case .packet(_, let length) = kind { lengths.append(length); #expect(meta.id == 7) }
            }
        }
        #expect(whole0 && lengths == [1])
        // The forgery: the same message whose payload attribute claims the padding.
        var msg: [UInt8] = [40, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  // header; length fixed below
        msg += [2, 0, 0, 0]  // nfgenmsg
        msg += [11, 0, 1, 0] + NetlinkBytes.be32(7) + [0x08, 0x00, 3, 0]  // PACKET_HDR (7 bytes, padded)
        msg += [7, 0, 10, 0, 0xaa, 0xbb, 0xcc, 0]  // PAYLOAD claiming 3 bytes
        msg[0] = 37  // the datagram ends after the payload's first byte
        let datagram = Array(msg[0..<37])
        let parser = QueueParser()
        defer { parser.deallocate() }
        var packets = 0
        var malformed = 0
        let whole = datagram.withUnsafeBytes { raw in
            QueueParser.walk(raw, parser: parser) { kind, _, offset in
                switch kind {
                case .packet(let at, let length):
                    packets += 1
                    #expect(offset + at + length <= datagram.count, "payload past the datagram")
                case .malformed: malformed += 1
                default: break
                }
            }
        }
        #expect(packets == 0)
        #expect(!whole || malformed == 1)
    }

    /// Found by FuzzQueue in CI: a datagram ending 1 byte into where libmnl's walk
    /// (up to nlmsg_len rounded up to 4) expects another attribute header. Reading that
    /// header's length went past the datagram; the buffer here is exactly the
    /// datagram's size, so the sanitizer run (ASan) catches any such read.
    @Test func attributeHeaderInTheMissingPaddingIsNotRead() {
        var bytes: [UInt8] = [33, 0, 0, 0, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
        bytes += [11, 0, 1, 0] + NetlinkBytes.be32(9) + [0x08, 0x00, 3, 0]  // PACKET_HDR, padded
        bytes += [4]  // the first byte of a header whose rest is missing
        #expect(bytes.count == 33)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { buffer.deallocate() }
        buffer.copyMemory(from: bytes, byteCount: bytes.count)
        let parser = QueueParser()
        defer { parser.deallocate() }
        var kinds: [QueueMessageKind] = []
        let whole = QueueParser.walk(UnsafeRawBufferPointer(start: buffer, count: bytes.count), parser: parser) { kind, _, _ in
            kinds.append(kind)
        }
        // No payload attribute: malformed, and the walk ends with the datagram.
        #expect(whole && kinds == [.malformed])
    }

    @Test func procQueueStatsParse() throws {
        let text = """
              0  23955     3 2 65531     5     7       12  1
              1 -4133     0 2 65535     0     0        0  1

        """
        // A negative port id is not a valid u32: the kernel prints it as unsigned, so reject.
        #expect(throws: KernelConfigError.self) { try QueueStats.parse(text) }
        let stats = try QueueStats.parse("    0  23955     3 2 65531     5     7       12  1\n")
        #expect(stats == [QueueStats(queue: 0, portID: 23955, waiting: 3, copyMode: 2, copyRange: 65531,
                                     queueDropped: 5, userDropped: 7, idSequence: 12)])
        #expect(try QueueStats.parse("") == [])
    }

    /// /proc/net/dev as Linux 6.18 prints it: enc0's transmit drops are what the
    /// ipsec-out worker's "queue" dropped.
    @Test func interfaceTransmitDropsParse() {
        let text = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
          enc0: 1234567    1000    0    3    0     0          0         0 98765432   70000    0  417    0     0       0          0

        """
        #expect(KernelStats.transmitDrops("enc0", in: text) == 417)
        #expect(KernelStats.transmitDrops("lo", in: text) == 0)
        #expect(KernelStats.transmitDrops("enc1", in: text) == nil)
        #expect(KernelStats.transmitDrops("enc0", in: "  enc0: 1 2 3\n") == nil)
    }

    @Test func fakeQueueHandsOutPacketsAndRecordsVerdicts() {
        let q = FakeQueue(number: 1)
        let id = q.enqueue([0x45, 0, 0, 20])
        q.enqueue([0x60, 0, 0, 0])
        let batch = QueueBatch(capacity: 1)
        #expect(q.receive(into: batch, wait: false) == .done(1))
        #expect(batch[0].id == id && batch[0].hwProtocol == 0x0800)
        #expect(batch.buffers[0].array == [0x45, 0, 0, 20])
        #expect(q.setVerdict(.acceptWithMark(5), id: id) == .done(0))
        #expect(q.verdicts.isEmpty)
        _ = q.flushVerdicts()
        #expect(q.verdicts == [.init(id: id, verdict: .acceptWithMark(5), payload: nil)])
        #expect(q.receive(into: batch, wait: false) == .done(1))
        #expect(batch[0].hwProtocol == 0x86dd)
        #expect(q.receive(into: batch, wait: false) == .wouldBlock)
    }

    @Test func fakeTUNAndSenderRecord() {
        let tun = FakeTUN()
        let buffer = PacketBuffer()
        #expect(tun.read(into: buffer) == .wouldBlock)
        tun.deliver([0x45, 1, 2])
        #expect(tun.read(into: buffer) == .done(3))
        #expect(tun.write(from: buffer) == .done(3))
        #expect(tun.written == [[0x45, 1, 2]])
        let sender = FakeSender()
        buffer.load([0x12])
        #expect(sender.send(buffer) == .failed(EAFNOSUPPORT))
        buffer.load([0x60, 0])
        #expect(sender.send(buffer) == .done(2))
        #expect(sender.sent == [[0x60, 0]])
    }

    @Test func fakeRoutingKeepsState() throws {
        let r = FakeRouting()
        let rule = MarkRule(family: .inet, value: 2, mask: 2, table: 100, priority: 100)
        try r.addRule(rule)
        try r.addDefaultRoute(family: .inet6, table: 100, device: "enc0")
        try r.setLooseReversePathFilter(device: "enc0")
        #expect(r.rules == [rule])
        #expect(r.sysctls["net/ipv4/conf/enc0/rp_filter"] == "2")
        try r.deleteRule(rule)
        try r.deleteDefaultRoute(family: .inet6, table: 100, device: "enc0")
        #expect(r.rules.isEmpty && r.routes.isEmpty)
        #expect(throws: SystemError.self) { try r.addDefaultRoute(family: .inet, table: 1, device: "nope0") }
    }
}
