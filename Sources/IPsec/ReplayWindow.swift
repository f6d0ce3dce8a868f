// ReplayWindow: RFC 4303 §3.4.3 anti-replay with an RFC 6479 bitmap and the RFC 4303
// Appendix A inference of the high half of extended sequence numbers.
//
// Use in two steps, as OpenBSD's checkreplaywindow does: `check` before decryption
// (changes nothing), `commit` only after the ICV verified. A value type; not
// thread-safe: the worker that owns the inbound SA owns its window.

public enum ReplayCheck: Equatable, Sendable {
    /// Not seen and inside or ahead of the window; carries the full 64-bit number.
    case ok(UInt64)
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3).
    case zero
    /// Older than the window's bottom.
    case tooOld
    /// Already received.
    case duplicate
}

public struct ReplayWindow: Sendable {
    /// The window size in packets; 0 = replay checking off (OpenBSD's manual SAs).
    public let size: Int
    /// Whether sequence numbers are 64-bit with the high half inferred.
    public let extended: Bool
    /// The highest sequence number committed so far (0 = none yet).
    public private(set) var top: UInt64 = 0

    // RFC 6479: a ring of 64-bit blocks; one extra block lets the window slide a
    // whole block at a time without clearing bits still inside the window.
    private var blocks: [UInt64]
    private let blockMask: UInt64

    public static let minimumSize = 64
    public static let maximumSize = 4096

    /// `size` 0 (off) or 64...4096.
    public init(size: Int, extended: Bool = false) {
        precondition(size == 0 || (ReplayWindow.minimumSize...ReplayWindow.maximumSize).contains(size))
        self.size = size
        self.extended = extended
        var n = 1
        while n * 64 < size { n <<= 1 }
        n += n > 0 ? 1 : 0
        var pow2 = 1
        while pow2 < n { pow2 <<= 1 }
        blocks = [UInt64](repeating: 0, count: size == 0 ? 1 : pow2)
        blockMask = UInt64(blocks.count - 1)
    }

    /// The window used to infer the high half of an ESN when checking is off.
    private var inferenceWindow: UInt64 { UInt64(size == 0 ? ReplayWindow.minimumSize : size) }

    /// RFC 4303 Appendix A: the full sequence number for a received low half, or nil
    /// when it would lie before sequence number 1 (a packet from "subspace -1").
    public func infer(_ low: UInt32) -> UInt64? {
        guard extended else { return UInt64(low) }
        let w = inferenceWindow
        let th = UInt32(truncatingIfNeeded: top >> 32)
        let tl = UInt32(truncatingIfNeeded: top)
        let bottom = tl &- UInt32(truncatingIfNeeded: w) &+ 1   // Tl - W + 1, mod 2^32
        var high: UInt32
        if UInt64(tl) >= w - 1 {
            // Case A: the window lies within one sequence-number subspace.
            high = low >= bottom ? th : th &+ 1
            if low < bottom && th == UInt32.max { return nil }
        } else {
            // Case B: the window spans two subspaces.
            if low >= bottom {
                guard th > 0 else { return nil }
                high = th - 1
            } else {
                high = th
            }
        }
        return UInt64(high) << 32 | UInt64(low)
    }

    /// Decides on a received sequence number (its low 32 bits as carried) without
    /// changing the window.
    public func check(_ low: UInt32) -> ReplayCheck {
        guard let seq = infer(low) else { return .tooOld }
        if seq == 0 { return .zero }
        if size == 0 { return .ok(seq) }
        if seq > top { return .ok(seq) }
        if top - seq >= UInt64(size) { return .tooOld }
        let bit = seq & 63
        let block = Int((seq >> 6) & blockMask)
        return blocks[block] & (1 << bit) != 0 ? .duplicate : .ok(seq)
    }

    /// Records `seq` (the value `check` returned) as received. Call only after the
    /// packet authenticated.
    public mutating func commit(_ seq: UInt64) {
        if size == 0 {
            if seq > top { top = seq }
            return
        }
        if seq > top {
            // Clear every block the window slides over, at most the whole ring.
            let oldBlock = top >> 6
            let newBlock = seq >> 6
            let steps = min(newBlock - oldBlock, UInt64(blocks.count))
            var i: UInt64 = 1
            while i <= steps {
                blocks[Int((oldBlock + i) & blockMask)] = 0
                i += 1
            }
            top = seq
        }
        blocks[Int((seq >> 6) & blockMask)] |= 1 << (seq & 63)
    }

    /// Sets the window's top to `seq`. With `received` (restoring the state recorded
    /// before a restart), every number at or below `seq` counts as received and is
    /// refused; without (tests of the ESN inference), only the top moves.
    public mutating func reset(top seq: UInt64, received: Bool = true) {
        for i in blocks.indices { blocks[i] = received && seq != 0 ? ~0 : 0 }
        top = seq
    }
}
