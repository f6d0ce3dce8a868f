// encctl against a fake encd on a real Unix socket: what each flag sends (load, delete,
// flush, show, tunable, monitor), in ipsecctl's order, and how replies, refusals and an
// absent daemon come out (text and exit status).

import Foundation
import Testing
import Config
@testable import Control

/// A directory with a configuration that includes another file and reads keys from
/// files, to check that encctl resolves both locally.
func writeConfigTree() throws -> (dir: String, main: String) {
    let dir = NSTemporaryDirectory() + "encctl-conf-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
    try (String(TestKeys.auth1.dropFirst(2)) + "\n").write(toFile: dir + "/keys/auth-out", atomically: true, encoding: .utf8)
    try (String(TestKeys.auth2.dropFirst(2)) + "\n").write(toFile: dir + "/keys/auth-in", atomically: true, encoding: .utf8)
    try """
        gw = "192.0.2.2"
        flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer $gw
        include "sa.conf"
        """.write(toFile: dir + "/main.conf", atomically: true, encoding: .utf8)
    try """
        esp from 192.0.2.1 to $gw spi 0x1000:0x1001 authkey file "keys/auth-out:keys/auth-in" \\
            enckey \(TestKeys.enc1):\(TestKeys.enc2)
        """.write(toFile: dir + "/sa.conf", atomically: true, encoding: .utf8)
    for f in ["keys/auth-out", "keys/auth-in", "main.conf", "sa.conf"] { chmod(dir + "/" + f, 0o600) }   // they hold keys
    return (dir, dir + "/main.conf")
}

let treeCanonical = """
    flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require
    flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require
    esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes \\
    \tauthkey \(TestKeys.auth1) \\
    \tenckey \(TestKeys.enc1)
    esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes \\
    \tauthkey \(TestKeys.auth2) \\
    \tenckey \(TestKeys.enc2)

    """

@Suite(.serialized) struct EncctlRoundTripTests {
    @Test func loadSendsCanonicalTextWithIncludesAndKeyFilesResolved() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let r = encctl(["-f", tree.main], socket: encd.path)
        #expect(r.status == 0 && r.out == "" && r.err == "")
        #expect(encd.requests == [Request(.tunable), Request(.load, config: treeCanonical, configName: tree.main)])
        // The canonical text parses back to the same rules.
        #expect(Printer.configuration(try parseConfig(treeCanonical), showKeys: true) == treeCanonical)
    }

    @Test func loadFromStandardInputIsNamedStdin() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        // Relative include and key names from stdin are looked up in the working directory.
        let text = try String(contentsOfFile: tree.main, encoding: .utf8)
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(tree.dir)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let r = withStandardInput(text) { encctl(["-f", "-"], socket: encd.path) }
        #expect(r.status == 0 && r.err == "")
        #expect(encd.requests == [Request(.tunable), Request(.load, config: treeCanonical, configName: "stdin")])
    }

    @Test func defineOverridesTheFilesMacro() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let r = encctl(["-D", "gw=198.51.100.7", "-f", tree.main], socket: encd.path)
        #expect(r.status == 0)
        #expect(encd.requests.last?.config?.contains("flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 198.51.100.7 type require\n") == true)
    }

    @Test func loadFillsDefaultsFromTheRunningTunables() throws {
        // encd runs with a replay window of 128 and NAT-T on port 4600: an SA that leaves
        // both to the defaults gets those, as ipsecctl's SAs get the kernel's sysctls.
        let encd = try FakeEncd { r in
            var x = Response()
            if r.command == .tunable {
                x.tunables = ["ipsec.replay_window": 128, "net.inet.esp.udpencap_port": 4600, "net.inet.esp.enable": 1,
                              "some.future.tunable": 7]
            }
            return [x]
        }
        defer { encd.stop() }
        let sa = "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000 udpencap enc aes-128-gcm enckey \(TestKeys.gcm1)"
        let r = withStandardInput(sa) { encctl(["-v", "-f", "-"], socket: encd.path) }
        #expect(r.status == 0 && r.err == "")
        // -v lists what the file says with the built-in defaults (as -n would).
        #expect(r.out == "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 udpencap port 4500 enc aes-128-gcm\n")
        let canonical = """
            set net.inet.esp.udpencap_port 4600
            set ipsec.replay_window 128
            esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 udpencap port 4600 enc aes-128-gcm \\
            \tenckey \(TestKeys.gcm1)

            """
        #expect(encd.requests.last == Request(.load, config: canonical, configName: "stdin"))
        let parsed = try parseConfig(canonical)
        #expect(parsed.sas.first?.replayWindow == 128 && parsed.sas.first?.encapsulation?.port == 4600)
    }

    @Test func deleteSendsTheSameTextAsDelete() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let r = encctl(["-d", "-f", tree.main], socket: encd.path)
        #expect(r.status == 0 && r.out == "" && r.err == "")
        #expect(encd.requests == [Request(.tunable), Request(.delete, config: treeCanonical, configName: tree.main)])
    }

    @Test func flushFlushesFlowsAndSAs() throws {
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let r = encctl(["-F"], socket: encd.path)
        #expect(r.status == 0 && r.out == "" && r.err == "")
        #expect(encd.requests == [Request(.flush, what: "all")])
    }

    @Test func stepsRunInIpsecctlsOrder() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { r in [r.command == .show ? .show(flows: [], sas: []) : Response()] }
        defer { encd.stop() }
        let r = encctl(["-s", "a", "-f", tree.main, "-F"], socket: encd.path)
        #expect(r.status == 0)
        #expect(r.out == "FLOWS:\nNo flows\n\nSAD:\nNo entries\n")
        #expect(encd.requests.map(\.command) == [.flush, .tunable, .load, .show])
    }

    @Test func noActionParsesWithoutADaemon() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let quiet = encctl(["-n", "-F", "-f", tree.main], socket: encd.path)
        #expect(quiet.status == 0 && quiet.out == "" && quiet.err == "")
        let absent = encctl(["-nf", tree.main], socket: encd.directory + "/nobody.sock")
        #expect(absent.status == 0 && absent.out == "" && absent.err == "")
        #expect(encd.requests.isEmpty)
    }

    @Test func noActionVerbosePrintsTheParsedRulesKeysOnlyWithK() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let v = encctl(["-nvf", tree.main])
        #expect(v.status == 0 && v.err == "")
        #expect(v.out == """
            flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require
            flow esp in from 10.2.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require
            esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes
            esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes

            """)
        let vk = encctl(["-nvkf", tree.main])
        #expect(vk.status == 0 && vk.out == treeCanonical)
    }

    @Test func configErrorsAreFileLineColumnLinesAndExit1() throws {
        let dir = NSTemporaryDirectory() + "encctl-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "flow esp from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2\nesp from 192.0.2.1 to 192.0.2.2 spi 0x10 enckey 0x00\n"
            .write(toFile: dir + "/bad.conf", atomically: true, encoding: .utf8)
        let encd = try FakeEncd { _ in [Response()] }
        defer { encd.stop() }
        let r = encctl(["-f", dir + "/bad.conf"], socket: encd.path)
        #expect(r.status == 1 && r.out == "")
        let lines = r.err.split(separator: "\n").map(String.init)
        #expect(lines.count >= 2)
        #expect(lines.dropLast().allSatisfy { $0.hasPrefix(dir + "/bad.conf:2:") })
        #expect(lines.last == "encctl: Syntax error in config file: ipsec rules not loaded")
        #expect(encd.requests.isEmpty, "nothing is sent for a broken file")
        let missing = encctl(["-nf", dir + "/none.conf"])
        #expect(missing.status == 1)
        #expect(missing.err == "\(dir)/none.conf: No such file or directory\nencctl: Syntax error in config file: ipsec rules not loaded\n")
    }

    @Test func daemonRefusalWithConfigErrorsExits1AndOtherwise3() throws {
        let tree = try writeConfigTree()
        defer { try? FileManager.default.removeItem(atPath: tree.dir) }
        let encd = try FakeEncd { r in
            switch r.command {
            case .tunable: return [Response()]
            case .load: return [.failure("nothing loaded: 1 error", errors: ["main.conf:3:1: SA esp spi 0x1000 to 192.0.2.2 exists"])]
            default: return [.failure("flush is not allowed")]
            }
        }
        defer { encd.stop() }
        let load = encctl(["-f", tree.main], socket: encd.path)
        #expect(load.status == 1 && load.out == "")
        #expect(load.err == "main.conf:3:1: SA esp spi 0x1000 to 192.0.2.2 exists\nencctl: nothing loaded: 1 error\n")
        let flush = encctl(["-F"], socket: encd.path)
        #expect(flush.status == 3 && flush.err == "encctl: flush is not allowed\n")
    }

    @Test func daemonNotRunningIsOneLineAndExit2() throws {
        let dir = NSTemporaryDirectory() + "encctl-none-\(UUID().uuidString)"
        let r = encctl(["-s", "all"], socket: dir + "/encd.sock")
        #expect(r.status == 2 && r.out == "")
        #expect(r.err == "encctl: encd is not running (no daemon at \(dir)/encd.sock)\n")
        // A socket file nobody listens on (encd died): the same.
        let encd = try FakeEncd { _ in [] }
        let path = encd.path
        encd.stop()
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        try FileManager.default.createDirectory(atPath: encd.directory, withIntermediateDirectories: true)
        defer { unlink(path); rmdir(encd.directory); close(s) }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let stale = encctl(["-F"], socket: path)
        #expect(stale.status == 2 && stale.err == "encctl: encd is not running (no daemon at \(path))\n")
    }

    @Test func showAsksForWhatWasRequestedAndFormatsTheReply() throws {
        let flows = try goldenFlows()
        let encd = try FakeEncd { r in [.show(flows: flows, sas: try! goldenSAs(showKeys: r.showKeys == true))] }
        defer { encd.stop() }
        let all = encctl(["-s", "all"], socket: encd.path)
        #expect(all.status == 0 && all.err == "")
        #expect(all.out == "FLOWS:\n" + flowGolden + "\nSAD:\n" + saGolden)
        let sa = encctl(["-kvs", "s"], socket: encd.path)
        #expect(sa.status == 0)
        #expect(sa.out.contains("\tauthkey \(TestKeys.auth1) \\\n\tenckey \(TestKeys.enc1)\n\tsa: spi 0x00002000"))
        #expect(encd.requests == [Request(.show, what: "all", verbose: false, showKeys: false),
                                  Request(.show, what: "sa", verbose: true, showKeys: true)])
    }

    @Test func monitorPrintsEachEventLineUntilEncdCloses() throws {
        let events = [
            Event(kind: "sa-added", time: 1, text: "sa added: esp spi 0x00001000 from 192.0.2.1 to 192.0.2.2"),
            Event(kind: "acquire", time: 2, text: "acquire: flow esp out from 10.1.0.0/24 to 10.2.0.0/24 peer 192.0.2.2 type require"),
            Event(kind: "sa-hard-expired", time: 3, text: "sa hard expired: esp spi 0x00001000 to 192.0.2.2"),
        ]
        let encd = try FakeEncd { r in
            guard r.command == .monitor else { return [.failure("unexpected")] }
            return [Response()] + events.map { e in var x = Response(); x.event = e; return x }
        }
        defer { encd.stop() }
        let r = encctl(["-m"], socket: encd.path)
        #expect(r.out == events.map { $0.text + "\n" }.joined())
        #expect(r.status == 2 && r.err == "encctl: encd closed the connection\n")
        #expect(encd.requests == [Request(.monitor)])
    }

    @Test func monitorRefusedExits3() throws {
        let encd = try FakeEncd { _ in [.failure("too many monitors")] }
        defer { encd.stop() }
        let r = encctl(["-m"], socket: encd.path)
        #expect(r.status == 3 && r.out == "" && r.err == "encctl: too many monitors\n")
    }

    @Test func otherProtocolVersionIsRefused() throws {
        let encd = try FakeEncd { _ in var x = Response(); x.version = 2; return [x] }
        defer { encd.stop() }
        let r = encctl(["-F"], socket: encd.path)
        #expect(r.status == 3 && r.err == "encctl: encd speaks control protocol version 2, encctl version 1\n")
    }

    @Test func garbageReplyIsADaemonError() throws {
        let encd = try FakeEncd { _ in [] }   // closes without answering
        defer { encd.stop() }
        let r = encctl(["-F"], socket: encd.path)
        #expect(r.status == 3 && r.err == "encctl: encd closed the connection\n")
    }

    @Test func tunablesAreReadAndSetLikeSysctl() throws {
        let table = ["ipsec.replay_window": 0, "net.inet.esp.enable": 1, "net.inet.esp.udpencap": 1,
                     "net.inet.esp.udpencap_port": 4500, "net.inet.ah.enable": 1,
                     "ipsec.policy_log_interval": 1, "ipsec.icmp_accept_clear": 1]
        let encd = try FakeEncd { r in
            var x = Response()
            x.tunables = table
            if let n = r.name, let v = r.value { x.tunables?[n] = Int(v) }
            return [x]
        }
        defer { encd.stop() }
        let get = encctl(["-T", "net.inet.esp"], socket: encd.path)
        #expect(get.status == 0)
        #expect(get.out == "net.inet.esp.enable=1\nnet.inet.esp.udpencap=1\nnet.inet.esp.udpencap_port=4500\n")
        let set = encctl(["-T", "ipsec.replay_window=128"], socket: encd.path)
        #expect(set.status == 0 && set.out == "ipsec.replay_window: 0 -> 128\n")
        #expect(encd.requests.suffix(2) == [Request(.tunable), Request(.tunable, name: "ipsec.replay_window", value: "128")])
        let bad = encctl(["-T", "ipsec.replay_window=100"], socket: encd.path)
        #expect(bad.status == 1 && bad.out == "")
        #expect(bad.err == "encctl: invalid value \"100\" for ipsec.replay_window: expected 0 or a multiple of 64 from 64 to 4096\n")
        let unknown = encctl(["-T", "net.inet.gre"], socket: encd.path)
        #expect(unknown.status == 1 && unknown.err == "encctl: unknown tunable \"net.inet.gre\"\n")
        let count = encd.requests.count
        let checked = encctl(["-n", "-T", "ipsec.replay_window=64"], socket: encd.path)
        #expect(checked.status == 0 && checked.out == "" && encd.requests.count == count)
    }
}
