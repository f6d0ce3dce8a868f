// Regression tests for the safety defects of issue #7 that live in the control plane:
// the reload race on sequence numbers (D2) and reloads that must change all of the
// kernel's sets or none (D6). The others are shown end to end in
// Tests/Integration/safety_test.sh.

import Config
import EncCore
import IPsec
import Kernel
import Testing
@testable import Daemon

@Suite struct SafetyRegressionTests {
    static let local: Set<IPAddress> = [IPAddress("192.0.2.1")!]

    static func conf(lifetime: String) -> String {
        """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm \
            enckey 0x\(String(repeating: "11", count: 20)):0x\(String(repeating: "22", count: 20)) \(lifetime)
        """
    }

    /// D2: a replacement SA with the same key (only its lifetime changed) is built while
    /// the old one keeps sending and reserves past the point where the new one would
    /// start. The new SA must start above every number the old one could ever use.
    @Test func replacementSAStartsAboveEverythingTheOldOneCanUse() throws {
        let store = MemorySequenceStore()
        let builder = PolicyBuilder(store: store, maxPolicy: 1000)
        let c1 = try ConfigParser.parse(text: Self.conf(lifetime: "lifetime hard seconds 3600"), fileName: "a")
        let s1 = try builder.build(flows: c1.flows, sas: c1.sas, localAddresses: Self.local, previous: .empty, now: 1)
        let old = try #require(s1.sad.all.first { $0.direction == .outbound })
        _ = try #require(old.takeSequence())

        let c2 = try ConfigParser.parse(text: Self.conf(lifetime: "lifetime hard seconds 7200"), fileName: "b")
        let s2 = try builder.prepare(flows: c2.flows, sas: c2.sas, localAddresses: Self.local, previous: s1, now: 2)
        let new = try #require(s2.sad.all.first { $0.direction == .outbound })
        #expect(new !== old)
        // The old SA is still the running one: a flood crosses a reservation boundary.
        var oldLast: UInt64 = 0
        for _ in 0..<70_000 { if let s = old.takeSequence() { oldLast = s } }
        builder.commit(s2, replacing: s1)
        while let s = old.takeSequence() { oldLast = s }     // whatever it still holds
        let first = try #require(new.takeSequence())
        #expect(first > oldLast, "the replacement starts at \(first), the old SA used \(oldLast)")
    }

    /// D6: a reload whose sets the kernel refuses part-way leaves every set as it was.
    @Test func refusedSetLeavesEverySetAsItWas() throws {
        let fake = FakeRuleset(backend: .xtCompat)
        let r = RulesetInstaller(nft: fake, config: EncdRulesetConfig(), log: Log(level: .error))
        let before = try Gateway("""
            flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
            """, local: ["192.0.2.1"])
        try r.prepare(before.box.value.spd, tunables: Tunables())
        let installed = fake.elements.mapValues { $0.map { "\($0.0) > \($0.1)" } }

        let after = try Gateway("""
            flow esp from 198.18.1.0/24 to 198.18.3.0/24 local 192.0.2.1 peer 192.0.2.3
            flow esp in from 198.18.4.0/24 to 198.18.1.0/24 local 192.0.2.1 peer 192.0.2.4
            """, local: ["192.0.2.1"])
        fake.refuse = ["require_in4"]
        #expect(throws: (any Error).self) { try r.prepare(after.box.value.spd, tunables: Tunables()) }
        #expect(fake.elements.mapValues { $0.map { "\($0.0) > \($0.1)" } } == installed)
    }
}

@Suite struct AddressChangeTests {
    /// encd started before the host had its address: the SA to that address was taken
    /// as outbound. Once the address appears, the next tick classifies it inbound.
    @Test func anSAFollowsTheHostsAddresses() throws {
        let addresses = Mutex<Set<IPAddress>>([])
        let log = Log(level: .error)
        let plane = ControlPlane(log: log, clock: CoarseClock(start: 10), store: MemorySequenceStore(), maxPolicy: 1000,
                                 configFile: "/dev/null", localAddresses: { addresses.withLock { $0 } })
        let c = try ConfigParser.parse(text: SafetyRegressionTests.conf(lifetime: ""), fileName: "t")
        try plane.start(c)
        let key = SAKey(destination: IPAddress("192.0.2.1")!, spi: 0x1001, proto: .esp)
        #expect(plane.box.value.sad.byKey[key]?.direction == .outbound)
        addresses.withLock { $0 = [IPAddress("192.0.2.1")!] }
        plane.tick(now: 11)
        #expect(plane.box.value.sad.byKey[key]?.direction == .inbound)
        #expect(plane.box.value.sad.byKey[SAKey(destination: IPAddress("192.0.2.2")!, spi: 0x1000, proto: .esp)]?.direction == .outbound)
    }
}

import Synchronization
