// FakeRuleset: an in-memory RulesetControl for tests. Keeps the installed tables (as
// values and as nft text) and the set contents; can pretend to be a kernel without the
// native queue expression.

import EncCore

public final class FakeRuleset: RulesetControl {
    public private(set) var tables: [String: NftTable] = [:]
    public private(set) var elements: [String: [(IPPrefix, IPPrefix)]] = [:]
    public private(set) var requests: [String] = []
    /// The backend `install` reports (a kernel like this project's reports .xtCompat).
    public var backend: NftQueueBackend
    /// Sets whose changes the fake refuses (as a kernel refusing an element would).
    public var refuse: Set<String> = []

    public init(backend: NftQueueBackend = .native) { self.backend = backend }

    public func install(_ table: NftTable, contents: [NftSetContents] = []) throws -> NftQueueBackend {
        requests.append("install table inet \(table.name)")
        for c in contents where !table.sets.contains(where: { $0.name == c.set.name }) {
            throw SystemError("add element inet \(table.name) \(c.set.name)", errno: 2 /* ENOENT */)
        }
        tables[table.name] = table
        elements = elements.filter { !$0.key.hasPrefix(table.name + "/") }   // the old table's sets go with it
        for set in table.sets { elements["\(table.name)/\(set.name)"] = [] }
        for c in contents { elements["\(table.name)/\(c.set.name)"] = c.pairs }
        return backend
    }

    public func install(_ table: NftTable, elements sets: [String: [(IPPrefix, IPPrefix)]]) throws -> NftQueueBackend {
        let b = try install(table)
        for (name, pairs) in sets { elements["\(table.name)/\(name)"] = pairs }
        return b
    }

    public func tableExists(named name: String) throws -> Bool { tables[name] != nil }

    /// enc0's egress tables installed, by name.
    public private(set) var egressTables: [String: NftEgressTable] = [:]

    public func installEgress(_ table: NftEgressTable) throws {
        requests.append("install table netdev \(table.name) (egress \(table.device))")
        egressTables[table.name] = table
    }

    public func removeTable(named name: String) throws {
        requests.append("delete table inet \(name)")
        tables[name] = nil
        elements = elements.filter { !$0.key.hasPrefix(name + "/") }
    }

    public func replaceElements(_ contents: [NftSetContents], table: String) throws {
        try replaceElements(contents, flushing: [], table: table)
    }

    public func flush(caches: [String], table: String) throws {
        guard !caches.isEmpty else { return }
        for name in caches where tables[table]?.caches.contains(where: { $0.name == name }) != true {
            throw SystemError("flush set inet \(table) \(name)", errno: 2 /* ENOENT */)
        }
        requests.append("flush inet \(table) " + caches.joined(separator: ", "))
    }

    public func replaceElements(_ contents: [NftSetContents], flushing caches: [String], table: String) throws {
        requests.append("replace elements inet \(table) " + contents.map { "\($0.set.name) (\($0.pairs.count))" }.joined(separator: ", ")
                        + (caches.isEmpty ? "" : "; flush " + caches.joined(separator: ", ")))
        var next = elements
        for c in contents {
            guard tables[table]?.sets.contains(where: { $0.name == c.set.name }) == true else {   // by name, as the kernel
                throw SystemError("add element inet \(table) \(c.set.name)", errno: 2 /* ENOENT */)
            }
            if refuse.contains(c.set.name) { throw SystemError("add element inet \(table) \(c.set.name)", errno: 22 /* EINVAL */) }
            next["\(table)/\(c.set.name)"] = c.pairs
        }
        elements = next     // one transaction: all or nothing
    }
}
