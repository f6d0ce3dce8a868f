// MarkLayout: the part of the 32-bit packet mark encd owns (a contiguous mask; the
// admin keeps every other bit). From the mask's lowest bit up:
//
//   bit 0        BYPASS   [X] has decided (or encd sent it): do not queue at [X] again
//   bit 1        PROTECT  route into enc0 (`ip rule fwmark PROTECT/PROTECT`), leak guard
//   bits 2...    POLICY   which SPD entry matched at [X], read back at the IPsec queue
//
// One value with PROTECT clear is reserved: INBOUND = BYPASS | all POLICY bits marks a
// packet that came out of enc0 and passed the inbound check. With src_valid_mark on
// enc0, the kernel's reverse-path check of such a packet looks the source up with this
// mark, and a policy rule sends that lookup to encd's table (whose default route is
// enc0), so a gateway with no route back to the remote site (or strict rp_filter)
// still accepts what encd writes into enc0.
//
// Default mask 0x0fff0000: BYPASS 0x00010000, PROTECT 0x00020000, 10 policy bits in
// 0x0ffc0000 (SA numbers 1...1022; 1023 is INBOUND's). Docs: Rules/README.md.

public struct MarkLayout: Equatable, Sendable {
    public let mask: UInt32
    public let bypass: UInt32
    public let protect: UInt32
    public let policyMask: UInt32
    public let policyShift: UInt32

    public static let defaultMask: UInt32 = 0x0fff_0000
    public static let `default` = try! MarkLayout(mask: defaultMask)

    /// Throws when `mask` is not one contiguous run of at least 3 bits.
    public init(mask: UInt32) throws {
        let shift = UInt32(mask.trailingZeroBitCount)
        guard mask != 0, (mask >> shift) & ((mask >> shift) &+ 1) == 0, mask.nonzeroBitCount >= 3 else {
            throw KernelConfigError("mark mask 0x\(String(mask, radix: 16)) must be one contiguous run of at least 3 bits (e.g. 0x0fff0000)")
        }
        self.mask = mask
        bypass = 1 << shift
        protect = 1 << (shift + 1)
        policyShift = shift + 2
        policyMask = mask & ~(bypass | protect)
    }

    /// Largest policy number an SA may have (the all-ones value is INBOUND's).
    public var maxPolicy: UInt32 { (policyMask >> policyShift) - 1 }

    /// The mark of a decrypted packet that passed the inbound check and is not
    /// protected again (BYPASS and every POLICY bit, PROTECT clear); match it with `mask`.
    public var inbound: UInt32 { bypass | policyMask }

    /// The mark for a decrypted packet that passed the inbound check (admin's bits kept).
    @inline(__always)
    public func inboundMark(keeping original: UInt32) -> UInt32 { (original & ~mask) | inbound }

    /// The mark for a bypass verdict: the admin's bits kept, encd's bits = BYPASS.
    @inline(__always)
    public func bypassMark(keeping original: UInt32) -> UInt32 { (original & ~mask) | bypass }

    /// The mark for a protect verdict carrying `policy`; nil when it does not fit.
    @inline(__always)
    public func protectMark(policy: UInt32, keeping original: UInt32) -> UInt32? {
        guard policy <= maxPolicy else { return nil }
        return (original & ~mask) | bypass | protect | (policy << policyShift)
    }

    /// The policy a protect mark carries; nil when the PROTECT bit is clear.
    @inline(__always)
    public func policy(of mark: UInt32) -> UInt32? {
        mark & protect == 0 ? nil : (mark & policyMask) >> policyShift
    }
}
