// Small parts of the daemon with their own contracts: the command line (old spellings
// still work, with a warning), the policy rules encd adds, and the sd_notify datagrams.

import EncCore
import Foundation
import Kernel
import Testing
@testable import Daemon

@Suite struct DaemonPartsTests {
    @Test func commandLineSpellsTheSocketAsTheToolsDo() throws {
        let dirs: Set<String> = ["/var/lib/encd-old"]
        let o = try Options.parse(["-d", "-S", "/run/x.sock", "-L", "/var/lib/e", "-R", "/run/e", "-vv"], isDirectory: { dirs.contains($0) })
        #expect(o.socketPath == "/run/x.sock" && o.stateDirectory == "/var/lib/e" && o.runDirectory == "/run/e")
        #expect(o.foreground && o.verbose == 2 && o.warnings.isEmpty)
        let old = try Options.parse(["-S", "/var/lib/encd-old", "-s", "/run/y.sock"], isDirectory: { dirs.contains($0) })
        #expect(old.stateDirectory == "/var/lib/encd-old" && old.socketPath == "/run/y.sock")
        #expect(old.warnings == ["-S /var/lib/encd-old: a directory, taken as the state directory; that is -L now (-S names the control socket)",
                                 "-s /run/y.sock: the control socket is -S now, as for encctl and encstat"])
        #expect(try Options.parse(["-U"]).unload)
        #expect(throws: DaemonError.self) { try Options.parse(["-U", "-n"]) }
        #expect(throws: DaemonError.self) { try Options.parse(["-x"]) }
    }

    @Test func workersPerStageAreOneToSixteen() throws {
        #expect(try Options.parse([]).workers == nil)
        #expect(try Options.parse(["-w", "2"]).workers == 2)
        #expect(try Options.parse(["-dw16"]).workers == 16)
        for bad in ["0", "17", "-1", "two", "99999999999999999999"] {
            #expect(throws: DaemonError.self) { try Options.parse(["-w", bad]) }
        }
        #expect((1...Options.maxWorkers).contains(EncDaemon.defaultWorkers()))
        #expect(WorkerShare(index: 2, count: 2) == nil && WorkerShare(index: 0, count: 0) == nil)
        #expect(WorkerShare.all(3).map(\.description) == ["1/3", "2/3", "3/3"])
        #expect(WorkerShare.whole.owns(7) && WorkerShare.all(2)[1].owns(7) && !WorkerShare.all(2)[0].owns(7))
        // Inbound SPIs of manual key pairs (every other number) still spread over two workers.
        let even = (0..<64).map { UInt32(0x1000 + 2 * $0) }.filter { WorkerShare.all(2)[0].owns(spi: $0) }.count
        #expect((20...44).contains(even), "\(even) of 64")
    }

    @Test func policyRulesRouteProtectedTrafficAndTheReversePathCheckIntoEnc0() {
        let rules = EncDaemon.policyRules(EncdRulesetConfig()).map(\.description)
        #expect(rules == [
            "ip -4 rule pref 100 fwmark 0x20000/0x20000 lookup 3660",
            "ip -6 rule pref 100 fwmark 0x20000/0x20000 lookup 3660",
            "ip -4 rule pref 99 fwmark 0xffd0000/0xfff0000 iif enc0 goto 101",
            "ip -4 rule pref 100 fwmark 0xffd0000/0xfff0000 lookup 3660",
            "ip -4 rule pref 101 fwmark 0xffd0000/0xfff0000 nop",
        ])
    }

    @Test func notifySendsDatagramsToTheNamedSocket() throws {
        let path = NSTemporaryDirectory() + "encd-notify-\(getpid())"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd); unlink(path) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        let n = SystemdNotify(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"])
        #expect(n.enabled && n.watchdogInterval == 30)
        n.ready("running: 2 flows")
        n.watchdog()
        var buf = [UInt8](repeating: 0, count: 256)
        let got = recv(fd, &buf, buf.count, 0)
        #expect(String(decoding: buf[0..<max(0, got)], as: UTF8.self) == "READY=1\nSTATUS=running: 2 flows")
        let got2 = recv(fd, &buf, buf.count, 0)
        #expect(String(decoding: buf[0..<max(0, got2)], as: UTF8.self) == "WATCHDOG=1")
        #expect(!SystemdNotify(environment: [:]).send("READY=1"))
    }
}
