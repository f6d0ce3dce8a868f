import Config
import Control
import EncCore
import Foundation
import IPsec
import Kernel
import Testing
@testable import Daemon

/// Every command through a real Unix socket, against a ControlPlane with kernel fakes.
@Suite struct ControlHandlerTests {
    @Test func statusReportsCountsTunablesAndPid() throws {
        let f = try ControlFixture(ctlSiteConf)
        let r = try f.call(Request(.status))
        #expect(r.ok && r.version == ControlProtocol.version)
        #expect(r.status?["flows"] == "2" && r.status?["sas"] == "2")
        #expect(r.status?["pid"] == "\(getpid())")
        #expect(r.tunables?["net.inet.esp.enable"] == 1 && r.tunables?.count == Tunables.table.count)
    }

    @Test func showPrintsFlowsAndSAsAsIpsecctlWithoutKeys() throws {
        let f = try ControlFixture(ctlSiteConf)
        let r = try f.call(Request(.show, what: "all"))
        #expect(r.ok)
        #expect(r.flows?.map(\.text) == [
            "flow esp out from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2 type require",
            "flow esp in from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.1 peer 192.0.2.2 type require",
        ])
        #expect(r.sas?.map(\.text) == [
            "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 enc aes-128-gcm",
            "esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 enc aes-128-gcm",
        ])
        let out = try #require(r.sas?.first)
        #expect(out.direction == "out" && out.state == "mature" && out.sequence == 1 && out.packets == 0)
        #expect(out.flags.contains("tunnel") && out.hardSecondsLeft == nil)
        #expect(r.sas?.last?.direction == "in")
        #expect(r.flows?.first?.peer == "192.0.2.2" && r.flows?.first?.type == "require")
        // Not a key anywhere in the encoded response.
        let json = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        for k in ctlAllKeys { #expect(!json.contains(k)) }
        // Prefixes select.
        #expect(try f.call(Request(.show, what: "f")).sas == nil)
        #expect(try f.call(Request(.show, what: "sa")).flows == nil)
        #expect(try f.call(Request(.show, what: "bogus")).error == "invalid \"what\" \"bogus\": expected flow, sa or all")
    }

    @Test func showKeysOnlyWhenAsked() throws {
        let f = try ControlFixture(ctlSiteConf)
        let r = try f.call(Request(.show, what: "sa", showKeys: true))
        #expect(r.sas?.first?.text == "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 enc aes-128-gcm \\\n\tenckey \(ctlEncKey1)")
        #expect(!f.logLines.contains { l in ctlAllKeys.contains { l.contains($0) } })
    }

    @Test func showReportsPerSAStateAndLifetimes() throws {
        let conf = """
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x3000 udpencap replay 128 esn lifetime soft packets 10 seconds 50 \\
            lifetime hard bytes 100000 packets 20 seconds 100 enc aes-128-gcm enckey \(ctlEncKey1)

        """
        let f = try ControlFixture(conf)
        let sa = try #require(f.snapshot.sad.all.first)
        for _ in 0..<3 { sa.account(bytes: 100, now: 1010, stats: f.stats) }
        f.clock.set(1030)
        let s = try #require(try f.call(Request(.show, what: "sa")).sas?.first)
        #expect(s.packets == 3 && s.bytes == 300)
        #expect(s.hardPacketsLeft == 17 && s.softPacketsLeft == 7 && s.hardBytesLeft == 99700 && s.softBytesLeft == nil)
        #expect(s.hardSecondsLeft == 70 && s.softSecondsLeft == 20 && s.age == 30 && s.sinceFirstUse == 20)
        #expect(s.flags == ["replay", "esn", "udpencap", "tunnel"] && s.replayWindow == 128)
    }

    @Test func countersNameEveryCounterIncludingZeros() throws {
        let f = try ControlFixture(ctlSiteConf)
        f.stats.add(.espInput, 3)
        f.stats.add(.espAuthFailed)
        let r = try f.call(Request(.counters))
        #expect(Set(r.counters?.keys.map { $0 } ?? []) == Set(Counter.allCases.map(\.name)))
        #expect(r.counters?["esp_input"] == 3 && r.counters?["esp_auth_failed"] == 1 && r.counters?["esp_output"] == 0)
    }

    @Test func loadAddsAndKeepsUnaffectedSAObjects() throws {
        let f = try ControlFixture(ctlSiteConf)
        let before = try #require(f.snapshot.sad.all.first { $0.spec.spi == 0x1000 })
        before.counters.add(.packets, 5)
        let r = try f.call(Request(.load, config: ctlExtraConf, configName: "extra.conf"))
        #expect(r.ok, "\(r)")
        #expect(f.snapshot.sad.count == 3 && f.snapshot.spd.flows.count == 4)
        #expect(f.snapshot.sad.byKey[before.key] === before && before.counters[.packets] == 5)
        #expect(f.kernel.prepared.last?.generation == f.snapshot.generation)
        // Loading the same text again changes nothing (the same objects stay).
        let added = try #require(f.snapshot.sad.all.first { $0.spec.spi == 0x2000 })
        #expect(try f.call(Request(.load, config: ctlExtraConf, configName: "extra.conf")).ok)
        #expect(f.snapshot.sad.all.first { $0.spec.spi == 0x2000 } === added && f.snapshot.spd.flows.count == 4)
    }

    @Test func brokenLoadChangesNothingAndSaysWhere() throws {
        let f = try ControlFixture(ctlSiteConf)
        let generation = f.snapshot.generation
        let broken = ctlExtraConf + "flow esp from 198.18.1.0/24 to nowhere peer 192.0.2.9\nesp tunnel spi\n"
        let r = try f.call(Request(.load, config: broken, configName: "broken.conf"))
        #expect(!r.ok)
        #expect(r.error?.hasPrefix("broken.conf: 2 errors") == true)
        #expect(r.errors?.count == 2 && r.errors?.allSatisfy { $0.hasPrefix("broken.conf:3:") || $0.hasPrefix("broken.conf:4:") } == true)
        #expect(f.snapshot.generation == generation && f.snapshot.sad.count == 2 && f.snapshot.spd.flows.count == 2)
    }

    @Test func loadTheKernelRefusesChangesNothing() throws {
        let f = try ControlFixture(ctlSiteConf)
        let old = f.snapshot
        f.kernel.refuse = true
        let r = try f.call(Request(.load, config: ctlExtraConf, configName: "extra.conf"))
        #expect(!r.ok && r.error?.contains("nftables refused") == true)
        #expect(f.snapshot.generation == old.generation)
        // The SAs the refused snapshot would have replaced are still usable.
        #expect(old.sad.all.allSatisfy { !$0.hardExpired })
    }

    @Test func loadNeverReadsFilesTheTextNames() throws {
        let f = try ControlFixture(ctlSiteConf)
        let r = try f.call(Request(.load, config: "include \"\(f.confPath)\"\n", configName: "inc.conf"))
        #expect(!r.ok && r.errors?.first?.contains("encd reads no file named in a request") == true)
    }

    @Test func deleteRemovesWhatTheTextNames() throws {
        let f = try ControlFixture(ctlSiteConf + ctlExtraConf)
        let kept = try #require(f.snapshot.sad.all.first { $0.spec.spi == 0x1000 })
        let r = try f.call(Request(.delete, config: ctlExtraConf, configName: "extra.conf"))
        #expect(r.ok, "\(r)")
        #expect(r.status?["result"] == "deleted from extra.conf: 2 flows, 1 SAs")
        #expect(f.snapshot.sad.count == 2 && f.snapshot.spd.flows.count == 2)
        #expect(f.snapshot.sad.byKey[kept.key] === kept)
    }

    @Test func flushSAsKeepsFlowsAndFlushAllEmpties() throws {
        let f = try ControlFixture(ctlSiteConf)
        let old = try #require(f.snapshot.sad.all.first)
        #expect(try f.call(Request(.flush, what: "sa")).ok)
        #expect(f.snapshot.sad.count == 0 && f.snapshot.spd.flows.count == 2)
        #expect(old.hardExpired)                      // retired: unusable, keys go with it
        #expect(try f.call(Request(.flush, what: "all")).ok)
        #expect(f.snapshot.spd.flows.isEmpty)
        let r = try f.call(Request(.show))
        #expect(r.flows == [] && r.sas == [])
    }

    @Test func tunablesAreReadAndSetAtRunTime() throws {
        let f = try ControlFixture(ctlSiteConf)
        #expect(try f.call(Request(.tunable)).tunables?["ipsec.replay_window"] == 64)
        #expect(try f.call(Request(.tunable, name: "net.inet.esp.enable", value: "0")).ok)
        #expect(!f.plane.switches.espEnabled && f.plane.switches.ahEnabled)
        #expect(try f.call(Request(.tunable, name: "ipsec.policy_log_interval", value: "7")).tunables?["ipsec.policy_log_interval"] == 7)
        #expect(f.plane.events.currentInterval == 7)
        #expect(try f.call(Request(.tunable, name: "net.inet.esp.udpencap_port", value: "4501")).ok)
        #expect(f.kernel.prepared.last?.natPort == 4501)
        // The default window applies to SAs loaded later, not to running ones.
        let running = try #require(f.snapshot.sad.all.first)
        #expect(try f.call(Request(.tunable, name: "ipsec.replay_window", value: "128")).ok)
        #expect(f.snapshot.sad.byKey[running.key] === running && running.spec.replayWindow == 64)
        #expect(try f.call(Request(.load, config: ctlExtraConf, configName: "x")).ok)
        #expect(f.snapshot.sad.all.first { $0.spec.spi == 0x2000 }?.spec.replayWindow == 128)
        // Bad names and values are refused with the allowed range.
        #expect(try f.call(Request(.tunable, name: "ipsec.replay_window", value: "100")).error
                == "invalid value \"100\" for ipsec.replay_window: expected 0 or a multiple of 64 from 64 to 4096")
        #expect(try f.call(Request(.tunable, name: "net.inet.nope", value: "1")).error?.hasPrefix("unknown tunable \"net.inet.nope\"") == true)
        #expect(try f.call(Request(.tunable, name: "net.inet.ah.enable")).error == "tunable net.inet.ah.enable: \"value\" missing")
    }

    @Test func reloadAppliesAGoodFileAndRefusesABrokenOne() throws {
        let f = try ControlFixture(ctlSiteConf)
        try (ctlSiteConf + ctlExtraConf).write(toFile: f.confPath, atomically: true, encoding: .utf8); chmod(f.confPath, 0o600)
        let r = try f.call(Request(.reload))
        #expect(r.ok && f.snapshot.sad.count == 3)
        let generation = f.snapshot.generation
        try (ctlSiteConf + "flow esp from nowhere\n").write(toFile: f.confPath, atomically: true, encoding: .utf8); chmod(f.confPath, 0o600)
        let bad = try f.call(Request(.reload))
        #expect(!bad.ok && bad.errors?.first?.hasPrefix(f.confPath + ":3:") == true)
        #expect(f.snapshot.generation == generation && f.snapshot.sad.count == 3)
        #expect(f.logLines.contains { $0.contains("reload refused, running configuration unchanged") })
    }

    @Test func hardLifetimeRemovesTheSAAndTheFlowFallsBack() throws {
        let conf = """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2 type require
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000 lifetime soft seconds 5 lifetime hard seconds 10 enc aes-128-gcm enckey \(ctlEncKey1)

        """
        let f = try ControlFixture(conf)
        let sel = Selector(source: IPAddress("198.18.1.1")!, destination: IPAddress("198.18.2.1")!, proto: 1)
        guard case .protect = f.snapshot.spd.decideOutbound(sel) else { Issue.record("protect first"); return }
        f.plane.tick(now: 1006)
        #expect(f.snapshot.sad.count == 1)
        #expect(f.logLines.contains { $0.contains("reached its soft lifetime") })
        f.plane.tick(now: 1011)
        #expect(f.snapshot.sad.count == 0)
        guard case .noSA(_, let clear, let acquire) = f.snapshot.spd.decideOutbound(sel) else { Issue.record("fallback"); return }
        #expect(!clear && acquire)                     // require: dropped, SA requested
        let c = try f.call(Request(.counters)).counters
        #expect(c?["sa_soft_expired"] == 1 && c?["sa_hard_expired"] == 1)
    }

    @Test func switchesDropAndCountInTheStages() throws {
        let gw = try Gateway(siteConf(), local: ["192.0.2.1"])
        let peer = try Gateway(siteConf2(), local: ["192.0.2.2"])
        let packet = PacketBuilder.icmpEcho(source: IPAddress("198.18.1.10")!, destination: IPAddress("198.18.2.20")!,
                                            identifier: 1, sequence: 1, payload: [1, 2, 3])
        guard case .acceptWithMark(let mark) = gw.spd(packet) else { Issue.record("protect"); return }
        let wire = try #require(gw.output(packet, mark: mark))
        var off = Tunables()
        off.espEnable = false
        gw.context.switches.apply(off)
        #expect(gw.output(packet, mark: mark) == nil)
        #expect(gw.stats[.espDisabledOutput] == 1)
        peer.context.switches.apply(off)
        #expect(peer.input(wire).1 == nil && peer.stats[.espDisabledInput] == 1)
        peer.context.switches.apply(Tunables())
        #expect(peer.input(wire).1 == packet)
    }
}
