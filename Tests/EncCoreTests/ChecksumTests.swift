import Testing
@testable import EncCore

// RFC 1071 section 3, numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
@Test func checksumMatchesRFC1071Example() {
    let data = hex("0001 f203 f4f5 f6f7")
    #expect(data.withUnsafeBytes { Checksum.sum($0) } == 0xddf2)
    #expect(data.withUnsafeBytes { Checksum.compute($0) } == 0x220d)
}

// A textbook IPv4 header whose checksum field holds 0xb861 (widely used worked example):
// 4500 ver/IHL/TOS, 0073 total length, 0000 id, 4000 DF, 40 TTL, 11 UDP,
// b861 checksum, c0a80001 source, c0a800c7 destination.
@Test func checksumOfKnownIPv4HeaderVerifiesAndRecomputes() {
    var h = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
    #expect(h.withUnsafeBytes { Checksum.compute($0) } == 0)
    h[10] = 0; h[11] = 0
    #expect(h.withUnsafeBytes { Checksum.compute($0) } == 0xb861)
}

@Test func checksumAgreesWithReferenceForEveryLengthAndAlignment() {
    var g = SplitMix(seed: 1071)
    let big = [UInt8].random(300, using: &g)
    for start in 0 ..< 8 {
        for length in 0 ... 200 {
            let piece = Array(big[start ..< start + length])
            let fast = big.withUnsafeBytes { Checksum.sum(UnsafeRawBufferPointer(rebasing: $0[start ..< start + length])) }
            #expect(fast == referenceSum(piece), "start \(start) length \(length)")
        }
    }
    // All-0xff data exercises the end-around carry at every width.
    let ones = [UInt8](repeating: 0xff, count: 1001)
    #expect(ones.withUnsafeBytes { Checksum.sum($0) } == referenceSum(ones))
}

@Test func partialSumsCombineIncludingOddOffsets() {
    var g = SplitMix(seed: 2)
    let data = [UInt8].random(97, using: &g)
    let whole = referenceSum(data)
    for cut in 0 ... data.count {
        let a = Array(data[..<cut]).withUnsafeBytes { Checksum.sum($0) }
        let b = Array(data[cut...]).withUnsafeBytes { Checksum.sum($0) }
        #expect(Checksum.combine(a, b, bAtOddOffset: cut % 2 == 1) == whole, "cut \(cut)")
    }
    // `initial` chains an even-length prefix.
    let prefix = Array(data[..<40]).withUnsafeBytes { Checksum.sum($0) }
    let chained = Array(data[40...]).withUnsafeBytes { Checksum.sum($0, initial: prefix) }
    #expect(chained == whole)
}

@Test func checksumOfEmptyAndOutOfRangeInput() {
    #expect(Checksum.sum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
    #expect([UInt8](repeating: 1, count: 4).withUnsafeBytes { Checksum.sum($0, offset: 2, count: 3) } == nil)
    #expect([UInt8](repeating: 1, count: 4).withUnsafeBytes { Checksum.sum($0, offset: -1, count: 1) } == nil)
    #expect([UInt8](repeating: 1, count: 4).withUnsafeBytes { Checksum.sum($0, offset: 2, count: 2) } == 0x0101)
}

// Pseudo-headers by hand: IPv4 (RFC 768) src 192.0.2.1, dst 198.51.100.2, zero,
// protocol 17, length 13; IPv6 (RFC 8200 8.1) src 2001:db8::1, dst 2001:db8::2,
// 32-bit length 11, three zero bytes, next header 17.
@Test func pseudoHeaderSumsMatchTheirByteLayout() {
    let v4 = hex("c0000201 c6336402 00 11 000d")
    #expect(Checksum.pseudoHeader(source: v4a, destination: v4b, protocol: 17, length: 13) == referenceSum(v4))
    let v6 = hex("20010db8000000000000000000000001 20010db8000000000000000000000002 0000000b 000000 11")
    #expect(Checksum.pseudoHeader(source: v6a, destination: v6b, protocol: 17, length: 11) == referenceSum(v6))
}

// RFC 1624 section 4 example: other header words sum to 0xcd7a, a field changes from
// 0x5555 to 0x3285. HC = ~(0xcd7a + 0x5555) = 0xdd2f; recomputation gives
// ~(0xcd7a + 0x3285) = ~0xffff = 0x0000, and eqn. 3 must agree (RFC 1141's gave 0xffff).
@Test func incrementalUpdateHandlesRFC1624ZeroCorner() {
    #expect(Checksum.update(0xdd2f, old: 0x5555, new: 0x3285) == 0x0000)
    // And the other direction back.
    #expect(Checksum.update(0x0000, old: 0x3285, new: 0x5555) == 0xdd2f)
    // No change leaves the checksum alone.
    #expect(Checksum.update(0x1234, old: 0xffff, new: 0xffff) == 0x1234)
    #expect(Checksum.update(0x1234, old: 0x0000, new: 0x0000) == 0x1234)
    // 0xffff and 0x0000 are the two one's complement zeros: a stored 0xffff (UDP's
    // form of a computed 0) comes back as 0x0000, which UDPHeader maps to 0xffff.
    #expect(Checksum.update(0xffff, old: 0x1234, new: 0x1234) == 0x0000)
}

@Test func incrementalUpdatesMatchRecomputation() {
    var g = SplitMix(seed: 1624)
    for _ in 0 ..< 2000 {
        var data = [UInt8].random(40, using: &g)
        let before = data.withUnsafeBytes { Checksum.compute($0) }
        // 16-bit word at an even offset
        let w = Int.random(in: 0 ..< 20, using: &g) * 2
        let old16 = UInt16(data[w]) << 8 | UInt16(data[w + 1])
        let new16 = UInt16.random(in: 0 ... 0xffff, using: &g)
        data[w] = UInt8(new16 >> 8); data[w + 1] = UInt8(new16 & 0xff)
        let after16 = data.withUnsafeBytes { Checksum.compute($0) }
        let inc16 = Checksum.update(before, old: old16, new: new16)
        #expect(inc16 == after16, "word \(w): \(old16) -> \(new16)")
        // 32-bit field at an even offset
        let d = Int.random(in: 0 ..< 18, using: &g) * 2
        let old32 = UInt32(data[d]) << 24 | UInt32(data[d + 1]) << 16 | UInt32(data[d + 2]) << 8 | UInt32(data[d + 3])
        let new32 = UInt32.random(in: 0 ... .max, using: &g)
        for k in 0 ..< 4 { data[d + k] = UInt8(truncatingIfNeeded: new32 >> (24 - 8 * UInt32(k))) }
        let after32 = data.withUnsafeBytes { Checksum.compute($0) }
        #expect(Checksum.update(after16, old32: old32, new32: new32) == after32)
    }
}

@Test func incrementalAddressUpdateMatchesPseudoHeaderRecomputation() {
    var g = SplitMix(seed: 3948)
    for family in [AddressFamily.inet, .inet6] {
        for _ in 0 ..< 500 {
            let a = IPAddress(family: family, hi: family == .inet ? UInt64(UInt32.random(in: 0 ... .max, using: &g)) << 32 : g.next(),
                              lo: family == .inet ? 0 : g.next())
            let b = IPAddress(family: family, hi: family == .inet ? UInt64(UInt32.random(in: 0 ... .max, using: &g)) << 32 : g.next(),
                              lo: family == .inet ? 0 : g.next())
            let other = family == .inet ? v4b : v6b
            let body = UInt32(UInt16.random(in: 0 ... 0xffff, using: &g))
            let c1 = Checksum.finish(Checksum.combine(body, Checksum.pseudoHeader(source: a, destination: other, protocol: 6, length: 100)))
            let c2 = Checksum.finish(Checksum.combine(body, Checksum.pseudoHeader(source: b, destination: other, protocol: 6, length: 100)))
            #expect(Checksum.update(c1, oldAddress: a, newAddress: b) == c2)
        }
    }
}
