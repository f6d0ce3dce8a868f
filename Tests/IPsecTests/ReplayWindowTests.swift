import Testing
@testable import IPsec

// RFC 4303 §3.4.3 and RFC 6479 cases: duplicate, too old, window slide, far jump.
@Suite struct ReplayWindowTests {
    func accept(_ w: inout ReplayWindow, _ low: UInt32) -> ReplayCheck {
        let r = w.check(low)
        if case .ok(let s) = r { w.commit(s) }
        return r
    }

    @Test func replayRejectsDuplicate() {
        var w = ReplayWindow(size: 64)
        #expect(accept(&w, 1) == .ok(1))
        #expect(accept(&w, 1) == .duplicate)
    }

    @Test func replayRejectsZero() {
        let w = ReplayWindow(size: 64)
        #expect(w.check(0) == .zero)
        #expect(ReplayWindow(size: 0).check(0) == .zero)
    }

    @Test func checkDoesNotCommit() {
        var w = ReplayWindow(size: 64)
        #expect(w.check(5) == .ok(5))
        #expect(w.check(5) == .ok(5))
        #expect(accept(&w, 5) == .ok(5))
        #expect(w.check(5) == .duplicate)
    }

    @Test func outOfOrderInsideWindowAccepted() {
        var w = ReplayWindow(size: 64)
        for s: UInt32 in [10, 3, 7, 9, 8] { #expect(accept(&w, s) == .ok(UInt64(s))) }
        #expect(accept(&w, 7) == .duplicate)
        #expect(w.top == 10)
    }

    @Test func replayRejectsTooOld() {
        var w = ReplayWindow(size: 64)
        _ = accept(&w, 100)
        #expect(w.check(37) == .ok(37))          // 100 - 37 = 63 < 64: inside
        #expect(w.check(36) == .tooOld)          // 64 behind the top
    }

    @Test func windowSlideClearsOldBits() {
        var w = ReplayWindow(size: 64)
        for s: UInt32 in 1...64 { _ = accept(&w, s) }
        // Slide by exactly one block: numbers now inside the window but never seen are accepted.
        #expect(accept(&w, 130) == .ok(130))
        #expect(w.check(64) == .tooOld)
        #expect(accept(&w, 67) == .ok(67))
        #expect(accept(&w, 129) == .ok(129))
        #expect(accept(&w, 129) == .duplicate)
    }

    @Test func farJumpClearsWholeRing() {
        var w = ReplayWindow(size: 128)
        for s: UInt32 in 1...128 { _ = accept(&w, s) }
        #expect(accept(&w, 1_000_000) == .ok(1_000_000))
        for s: UInt32 in (1_000_000 - 127)..<1_000_000 {
            #expect(w.check(s) == .ok(UInt64(s)))
        }
        #expect(w.check(1_000_000 - 128) == .tooOld)
    }

    @Test(arguments: [64, 100, 1024, 4096])
    func windowSizeIsExact(size: Int) {
        var w = ReplayWindow(size: size)
        _ = accept(&w, 10_000)
        #expect(w.check(UInt32(10_000 - size + 1)) == .ok(UInt64(10_000 - size + 1)))
        #expect(w.check(UInt32(10_000 - size)) == .tooOld)
    }

    @Test func windowOffAcceptsReplays() {
        var w = ReplayWindow(size: 0)
        #expect(accept(&w, 5) == .ok(5))
        #expect(accept(&w, 5) == .ok(5))
        #expect(accept(&w, 1) == .ok(1))
    }

    // RFC 4303 Appendix A.2: inferring Seqh from Seql and the window.
    @Test func esnCaseAWithinOneSubspace() {
        var w = ReplayWindow(size: 64, extended: true)
        w.reset(top: 0x0000_0005_0000_1000, received: false)            // Th = 5, Tl = 0x1000 >= W - 1
        #expect(w.check(0x0000_1001) == .ok(0x0000_0005_0000_1001))   // ahead, same subspace
        #expect(w.check(0x0000_0FC1) == .ok(0x0000_0005_0000_0FC1))   // Tl - W + 1: inside
        #expect(w.check(0x0000_0FC0) == .ok(0x0000_0006_0000_0FC0))   // below the window: next subspace
    }

    @Test func esnCaseBSpanningTwoSubspaces() {
        var w = ReplayWindow(size: 64, extended: true)
        w.reset(top: 0x0000_0005_0000_0010, received: false)            // Th = 5, Tl = 16 < W - 1
        #expect(w.check(0x0000_0011) == .ok(0x0000_0005_0000_0011))   // ahead
        #expect(w.check(0xFFFF_FFF0) == .ok(0x0000_0004_FFFF_FFF0))   // Seql >= Tl - W + 1: previous subspace
        #expect(w.check(0xFFFF_FFD0) == .ok(0x0000_0005_FFFF_FFD0))   // below Tl - W + 1: Th, far ahead
    }

    @Test func esnRolloverAcceptsNextSubspace() {
        var w = ReplayWindow(size: 64, extended: true)
        w.reset(top: 0xFFFF_FFF0, received: false)
        #expect(accept(&w, 0x0000_0002) == .ok(0x1_0000_0002))
        #expect(w.top == 0x1_0000_0002)
        #expect(accept(&w, 0xFFFF_FFF5) == .ok(0xFFFF_FFF5))   // late packet from the old subspace
        #expect(accept(&w, 0xFFFF_FFF5) == .duplicate)
        #expect(w.check(0xFFFF_FF00) == .ok(0x1_FFFF_FF00))     // outside: inferred as next subspace's
    }

    @Test func esnNothingBeforeSubspaceZero() {
        var w = ReplayWindow(size: 64, extended: true)
        _ = accept(&w, 3)
        #expect(w.check(0xFFFF_FFFF) == .tooOld)   // would be subspace -1
    }

    @Test func nonExtendedWrapIsNotInferred() {
        var w = ReplayWindow(size: 64)
        w.reset(top: 0xFFFF_FFF0)
        #expect(w.check(2) == .tooOld)
    }
}
