// Reading configuration, include and key files (control path only), and the path
// arithmetic for `include` and `file` names, which are relative to the directory of
// the file that names them.

#if canImport(Glibc)
import Glibc
#endif

/// A file could not be read; `message` is the system's reason ("No such file or directory").
public struct FileReadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

package enum Files {
    /// Reads a whole text file; "-" reads standard input.
    package static func read(_ path: String) throws -> String {
        let fp: UnsafeMutablePointer<FILE>?
        if path == "-" {
            fp = stdin
        } else {
            fp = fopen(path, "r")
        }
        guard let f = fp else { throw FileReadError(path: path, message: String(cString: strerror(errno))) }
        defer { if path != "-" { fclose(f) } }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 8192)
        // The bytes may hold keys: wipe both buffers once the text is made (the String
        // itself cannot be wiped; it lives until the configuration is parsed).
        defer {
            out.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } }
            buf.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } }
        }
        while true {
            let n = buf.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { out.append(contentsOf: buf[0..<n]) }
            if n < buf.count {
                if ferror(f) != 0 { throw FileReadError(path: path, message: String(cString: strerror(errno))) }
                break
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The permission bits of a file, nil when it cannot be stat'ed.
    package static func mode(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode)
    }

    /// The directory part of a path ("." when there is none).
    package static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// `path` if absolute, else `path` below `directory`; "." and ".." resolved lexically.
    package static func resolve(_ path: String, relativeTo directory: String) -> String {
        let joined = path.hasPrefix("/") ? path : (directory == "." ? path : directory + "/" + path)
        var parts = [Substring]()
        for p in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if p == "." { continue }
            if p == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if p == "..", joined.hasPrefix("/") { continue }
            parts.append(p)
        }
        let body = parts.joined(separator: "/")
        if joined.hasPrefix("/") { return "/" + body }
        return body.isEmpty ? "." : body
    }

    /// The name used to detect include loops: the real path when the file exists
    /// (symbolic links resolved), the lexical path otherwise.
    package static func identity(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }
}
