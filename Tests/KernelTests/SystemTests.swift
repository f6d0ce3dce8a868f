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
