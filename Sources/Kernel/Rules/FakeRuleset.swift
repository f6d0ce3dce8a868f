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

    public func removeTable(named name: String) throws {
        requests.append("delete table inet \(name)")
        tables[name] = nil
        elements = elements.filter { !$0.key.hasPrefix(name + "/") }
    }

    public func replaceElements(of set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) throws {
        requests.append("replace elements inet \(table) \(set.name) (\(pairs.count))")
        guard tables[table]?.sets.contains(where: { $0.name == set.name }) == true else {   // by name, as the kernel
            throw SystemError("add element inet \(table) \(set.name)", errno: 2 /* ENOENT */)
        }
        elements["\(table)/\(set.name)"] = pairs
    }
}
