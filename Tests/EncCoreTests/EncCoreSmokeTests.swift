import Testing
@testable import EncCore

@Test func prefixContainsAndPrintsLikeOpenBSD() {
    let p = IPPrefix("10.1.0.9/24")!
    #expect(p.description == "10.1.0.0/24")
    #expect(p.contains(IPAddress("10.1.0.200")!))
    #expect(!p.contains(IPAddress("10.1.1.1")!))
    #expect(IPPrefix("2001:db8::1")!.description == "2001:db8::1")
    #expect(IPPrefix.any(.inet6).contains(IPAddress("2001:db8::5")!))
}
