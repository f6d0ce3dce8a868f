import Testing
@testable import EncCore

/// An ESP-in-UDP packet as ESPOutput writes it: IPv4 (DF, no options) or IPv6, UDP,
/// then `payload` bytes (the ESP packet; its first byte says which).
private func datagram(v6: Bool = false, payload: Int, tag: UInt8 = 1, tos: UInt8 = 0, ttl: UInt8 = 64,
                      sport: UInt16 = 4500, dport: UInt16 = 4500, dst: UInt8 = 2, flags: UInt16 = 0x4000) -> [UInt8] {
    let udp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff),
                        UInt8((payload + 8) >> 8), UInt8((payload + 8) & 0xff), 0, 0]
    let body = [UInt8](repeating: tag, count: payload)
    if v6 {
        let plen = payload + 8
        var h: [UInt8] = [0x60 | tos >> 4, tos << 4, 0, 0, UInt8(plen >> 8), UInt8(plen & 0xff), 17, ttl]
        h += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        h += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [dst]
        return h + udp + body
    }
    let total = 20 + 8 + payload
    let h: [UInt8] = [0x45, tos, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, UInt8(flags >> 8), UInt8(flags & 0xff),
                      ttl, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, dst]
    return h + udp + body
}

private func append(_ batch: UDPSegmentBatch, _ p: [UInt8]) -> UDPSegmentBatch.Append? {
    var p = p
    return p.withUnsafeMutableBytes { b in
        guard let (h, start) = UDPSegmentBatch.header(of: b) else { return nil }
        return batch.append(b, header: h, payloadStart: start)
    }
}

private func header(_ p: [UInt8]) -> UDPSegmentBatch.Header? {
    var p = p
    return p.withUnsafeMutableBytes { UDPSegmentBatch.header(of: $0)?.header }
}

@Test func theHeaderOfAnESPInUDPPacketIsReadForTheKernel() throws {
    let h = try #require(header(datagram(payload: 100, tos: 0xb8, ttl: 63, sport: 4500, dport: 40001)))
    #expect(!h.isIPv6 && h.trafficClass == 0xb8 && h.hopLimit == 63 && h.sourcePort == 4500 && h.destinationPort == 40001)
    #expect(h.source == IPAddress("192.0.2.1")! && h.destination == IPAddress("198.51.100.2")!)
    let h6 = try #require(header(datagram(v6: true, payload: 100, tos: 0x28, ttl: 9)))
    #expect(h6.isIPv6 && h6.trafficClass == 0x28 && h6.hopLimit == 9)
    #expect(h6.source == IPAddress("2001:db8::1")! && h6.destination == IPAddress("2001:db8::2")!)
}

@Test func whatTheKernelWouldNotGiveBackUnchangedIsNotBatched() {
    #expect(header(datagram(payload: 100, flags: 0)) == nil, "DF clear: the kernel could fragment it")
    #expect(header(datagram(payload: 100, flags: 0x6000)) == nil, "a fragment")
    var options = datagram(payload: 100)
    options[0] = 0x46
    #expect(header(options) == nil, "IPv4 options")
    var tcp = datagram(payload: 100)
    tcp[9] = 6
    #expect(header(tcp) == nil, "not UDP")
    var label = datagram(v6: true, payload: 100)
    label[3] = 1
    #expect(header(label) == nil, "an IPv6 flow label")
    var ext = datagram(v6: true, payload: 100)
    ext[6] = 0
    #expect(header(ext) == nil, "an IPv6 extension header")
    var short = datagram(payload: 100)
    short.removeLast()
    #expect(header(short) == nil, "IP length and packet disagree")
    var udpLength = datagram(payload: 100)
    udpLength[25] &+= 1
    #expect(header(udpLength) == nil, "UDP length and packet disagree")
    #expect(header(Array(datagram(payload: 0))) == nil, "no payload")
    #expect(header([]) == nil && header([0x45]) == nil && header([0x60, 0, 0]) == nil)
}

@Test func aRunIsOneHeaderAndOneSizeWithAShorterLast() {
    let batch = UDPSegmentBatch()
    #expect(append(batch, datagram(payload: 1000, tag: 1)) == .added)
    #expect(append(batch, datagram(payload: 1000, tag: 2)) == .added)
    #expect(append(batch, datagram(payload: 1001)) == .endsRun, "larger than the run's size")
    #expect(append(batch, datagram(payload: 1000, tos: 4)) == .endsRun, "another TOS")
    #expect(append(batch, datagram(payload: 1000, ttl: 1)) == .endsRun, "another TTL")
    #expect(append(batch, datagram(payload: 1000, dport: 4501)) == .endsRun, "another port")
    #expect(append(batch, datagram(payload: 1000, dst: 3)) == .endsRun, "another destination")
    #expect(append(batch, datagram(v6: true, payload: 1000)) == .endsRun, "another family")
    #expect(append(batch, datagram(payload: 400, tag: 3)) == .added, "a shorter last one")
    #expect(append(batch, datagram(payload: 400)) == .endsRun, "nothing after the shorter one")
    #expect(batch.count == 3 && batch.segmentSize == 1000 && batch.length == 2400)
    #expect(Array(batch.datagram(0)) == [UInt8](repeating: 1, count: 1000))
    #expect(Array(batch.datagram(1)) == [UInt8](repeating: 2, count: 1000))
    #expect(Array(batch.datagram(2)) == [UInt8](repeating: 3, count: 400))
    batch.reset()
    #expect(batch.count == 0 && batch.length == 0)
    #expect(append(batch, datagram(v6: true, payload: 64)) == .added, "an empty run takes anything batchable")
    #expect(batch.header.isIPv6 && batch.segmentSize == 64)
}

@Test func aRunStopsAtTheKernelsSegmentAndByteLimits() {
    let batch = UDPSegmentBatch()
    for _ in 0..<UDPSegmentBatch.kernelMaxSegments { #expect(append(batch, datagram(payload: 100)) == .added) }
    #expect(append(batch, datagram(payload: 100)) == .endsRun)
    batch.reset()
    var n = 0
    while append(batch, datagram(payload: 1472)) == .added { n += 1 }
    #expect(n == UDPSegmentBatch.maxBytes / 1472 && batch.length <= UDPSegmentBatch.maxBytes)
    let one = UDPSegmentBatch(maxSegments: 1)
    #expect(append(one, datagram(payload: 100)) == .added)
    #expect(append(one, datagram(payload: 100)) == .endsRun, "maxSegments 1: no runs")
}
