import Glibc
import Testing
@testable import Kernel

@Suite struct SystemTests {
    @Test func systemErrorNamesCallMessageAndErrno() {
        let e = SystemError("open(/dev/net/tun)", errno: EACCES)
        #expect(e.description == "open(/dev/net/tun): Permission denied (EACCES)")
        #expect(SystemError.name(of: 9999) == "errno 9999")
    }

    @Test func syscallRetriesEINTR() throws {
        var calls = 0
        let n = try Syscall.check("fake()") { () -> Int32 in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 42
        }
        #expect(n == 42)
        #expect(calls == 3)
    }

    @Test func syscallThrowsNamedErrorAndReportsWouldBlock() {
        #expect(throws: SystemError("open(/nonexistent/x)", errno: ENOENT)) {
            try Syscall.check("open(/nonexistent/x)") { open("/nonexistent/x", O_RDONLY) }
        }
        #expect(Syscall.retry { () -> Int32 in errno = EAGAIN; return -1 } == .wouldBlock)
        #expect(Syscall.retry { () -> Int32 in errno = EBADF; return -1 } == .failed(EBADF))
    }

    @Test func sysctlRefusesKeysOutsideProcSys() {
        #expect(throws: KernelConfigError.self) { try Sysctl.write("../../etc/passwd", "x") }
        #expect(throws: KernelConfigError.self) { try Sysctl.write("/proc/sys/x", "1") }
    }
}

@Suite struct KernelStatsTests {
    @Test func readsOneCounterFromTheNamesAndValuesLines() {
        let text = """
            TcpExt: SyncookiesSent IPReversePathFilter TCPTimeouts
            TcpExt: 0 17 4
            IpExt: InNoRoutes InTruncatedPkts
            IpExt: 2 0
            """
        #expect(KernelStats.value("TcpExt", "IPReversePathFilter", in: text) == 17)
        #expect(KernelStats.value("IpExt", "InNoRoutes", in: text) == 2)
        #expect(KernelStats.value("IpExt", "IPReversePathFilter", in: text) == nil)
        #expect(KernelStats.value("TcpExt", "IPReversePathFilter", in: "TcpExt: IPReversePathFilter\nTcpExt: x") == nil)
    }
}
