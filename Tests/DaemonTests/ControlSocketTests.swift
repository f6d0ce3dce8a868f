import Config
import Control
import EncCore
import Foundation
import IPsec
import Testing
@testable import Daemon

/// The socket itself: permissions, peers, bad requests, silent clients, monitor.
@Suite struct ControlSocketTests {
    @Test func socketIsCreatedMode0600AndReplacesAStaleOne() throws {
        let f = try ControlFixture(ctlSiteConf)
        var st = stat()
        #expect(lstat(f.socketPath, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_mode & S_IFMT == S_IFSOCK)
        f.server.stop()
        #expect(lstat(f.socketPath, &st) != 0)       // removed on stop
        // A socket file left behind (a crash) is replaced.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in f.socketPath.utf8.enumerated() { p[i] = b } }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        let again = ControlServer(path: f.socketPath, plane: f.plane, log: f.log)
        try again.start()
        defer { again.stop() }
        #expect(try ControlClient(path: f.socketPath).call(Request(.status)).ok)
    }

    @Test func socketPathComesFromRunDirectoryOrDashS() throws {
        #expect(Options().socketPath == "/run/encd/encd.sock" && Options().socketPath == ControlProtocol.defaultSocket)
        #expect(try Options.parse(["-R", "/tmp/r"]).socketPath == "/tmp/r/encd.sock")
        #expect(try Options.parse(["-R", "/tmp/r", "-s", "/tmp/ctl.sock"]).socketPath == "/tmp/ctl.sock")
        #expect(try Options.parse(["-s/tmp/x.sock", "-d"]).socketPath == "/tmp/x.sock")
    }

    @Test func refusesToReplaceSomethingThatIsNotASocket() throws {
        let f = try ControlFixture(ctlSiteConf)
        let path = f.dir + "/not-a-socket"
        try "x".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: DaemonError.self) { try ControlServer(path: path, plane: f.plane, log: f.log).start() }
    }

    @Test func aPeerWithAnotherUIDIsRefusedAndLoggedOnce() throws {
        let f = try ControlFixture(ctlSiteConf, allowedUIDs: [])   // nobody is allowed: we are "another uid"
        for _ in 0..<3 {
            let r = try f.call(Request(.load, config: ctlExtraConf))
            #expect(!r.ok && r.error == "permission denied")
        }
        #expect(f.snapshot.sad.count == 2)
        #expect(f.logLines.filter { $0.contains("control socket: refused uid \(getuid())") }.count == 1)
    }

    @Test func malformedUnknownAndOversizedRequestsGetErrors() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.raw(ControlFixture.frame("{not json"))?.error?.hasPrefix("malformed message") == true)
        #expect(try f.raw(ControlFixture.frame("[1,2]"))?.error?.hasPrefix("malformed message") == true)
        #expect(try f.raw(ControlFixture.frame(#"{"version":2,"command":"status"}"#))?.error
                == "unsupported protocol version 2 (encd speaks 1)")
        #expect(try f.raw(ControlFixture.frame(#"{"version":1,"command":"reboot"}"#))?.error?
                    .hasPrefix("unknown command \"reboot\": expected one of status, show") == true)
        #expect(try f.raw(ControlFixture.frame(#"{"version":1}"#))?.error == "malformed request: no \"command\"")
        #expect(try f.raw(ControlFixture.frame(#"{"version":1,"command":"show","verbose":"yes"}"#))?.error
                == "malformed request: field \"verbose\" has the wrong type")
        #expect(try f.raw(ControlFixture.frame(#"{"version":1,"command":"load"}"#))?.error
                == "load needs \"config\" (ipsec.conf text)")
        let huge = UInt32(ControlProtocol.maximumMessage + 1)
        #expect(try f.raw([UInt8(huge >> 24), UInt8(huge >> 16 & 0xff), UInt8(huge >> 8 & 0xff), UInt8(huge & 0xff)])?.error
                == "message of \(huge) bytes is over the \(ControlProtocol.maximumMessage)-byte limit")
        // A truncated frame (length says more than comes) times out with an error.
        #expect(try f.raw(Array(ControlFixture.frame(#"{"version":1,"command":"status"}"#).prefix(10)))?.error
                == "no request within 1 seconds")
        // The daemon is unharmed.
        #expect(try f.call(Request(.status)).ok && f.snapshot.sad.count == 2)
    }

    @Test func aSilentClientDoesNotBlockOthers() throws {
        let f = try ControlFixture(ctlSiteConf, requestTimeout: 2)
        let silent = try ControlClient(path: f.socketPath)
        let start = Date()
        #expect(try f.call(Request(.status)).ok)
        #expect(Date().timeIntervalSince(start) < 1)
        // The silent one is told, and closed, after the timeout.
        let r = try Framing.receive(Response.self, from: silent.fd)
        #expect(r?.error == "no request within 2 seconds")
        #expect(try Framing.receive(Response.self, from: silent.fd) == nil)
    }

    @Test func aClientThatConnectsAndClosesIsIgnored() throws {
        let f = try ControlFixture(ctlSiteConf)
        for _ in 0..<5 { _ = try ControlClient(path: f.socketPath) }
        #expect(try f.call(Request(.status)).ok)
    }

    @Test func monitorStreamsSAAndReloadEvents() throws {
        let f = try ControlFixture(ctlSiteConf)
        let m = try ControlClient(path: f.socketPath)
        let ack = try m.call(Request(.monitor))
        #expect(ack.ok && ack.event == nil && ack.status?["monitor"] == "subscribed")
        #expect(try f.call(Request(.load, config: ctlExtraConf, configName: "extra.conf")).ok)
        let e1 = try #require(try m.next()?.event)
        #expect(e1.kind == "sa-added")
        #expect(e1.text == "SA added: esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x00002000 auth hmac-sha2-256 enc aes-128")
        #expect(try f.call(Request(.delete, config: ctlExtraConf, configName: "extra.conf")).ok)
        #expect(try m.next()?.event?.kind == "sa-deleted")
        try "flow esp from nowhere\n".write(toFile: f.confPath, atomically: true, encoding: .utf8); chmod(f.confPath, 0o600)
        #expect(!(try f.call(Request(.reload)).ok))
        let failed = try #require(try m.next()?.event)
        #expect(failed.kind == "reload-failed" && failed.text.contains(f.confPath + ":1:"))
        // Packet-path events: acquire and authentication failures, rate-limited.
        let flow = f.snapshot.spd.flows[0]
        let sel = Selector(source: IPAddress("198.18.1.1")!, destination: IPAddress("198.18.2.1")!, proto: 1)
        f.plane.events.acquire(flow: flow, index: 0, packet: sel)
        f.plane.events.acquire(flow: flow, index: 0, packet: sel)          // same second: held back
        f.plane.events.inputFailure(.espAuthFailed, spi: 0x1001, from: IPAddress("192.0.2.2")!)
        #expect(try m.next()?.event?.kind == "acquire")
        let auth = try #require(try m.next()?.event)
        #expect(auth.kind == "auth-failure" && auth.text == "packet that failed verification received from 192.0.2.2 spi 0x00001001")
        #expect(f.plane.bus.hasSubscribers)
        m.close()
        // The server notices the closed monitor and unsubscribes.
        for _ in 0..<40 where f.plane.bus.hasSubscribers { usleep(50_000) }
        #expect(!f.plane.bus.hasSubscribers)
    }

    @Test func aSlowMonitorLosesEventsCountedNotTheDaemon() throws {
        let bus = EventBus(queueLimit: 2)
        let sub = bus.subscribe()
        for i in 0..<5 { bus.publish("sa-added", "\(i)") }
        #expect(bus.dropped == 3)
        #expect(sub.next(timeout: 0)?.text == "0" && sub.next(timeout: 0)?.text == "1")
        let note = try #require(sub.next(timeout: 0))
        #expect(note.kind == "events-dropped" && note.text.hasPrefix("3 events dropped"))
        #expect(sub.next(timeout: 0.05) == nil)
        bus.unsubscribe(sub)
        bus.publish("sa-added", "nobody listens")
        #expect(bus.dropped == 3 && !bus.hasSubscribers)
    }
}

extension ControlClient {
    /// Closes the connection early (the monitor test's client going away).
    func close() { shutdown(fd, Int32(SHUT_RDWR)) }
}
