// Configuration errors: what went wrong and where (file:line:column), in the form
// editors and compilers use, so `encctl -n -f file` output can be jumped to.

/// A place in a configuration file. Lines and columns count from 1; a column counts
/// characters (UTF-8 continuation bytes are not counted), a tab is one column.
/// Line 0 means "the file as a whole" (it could not be opened).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { line > 0 ? "\(file):\(line):\(column)" : file }
}

/// One error (or warning) in a configuration file. `message` never contains key
/// material: tokens that look like keys are described, not quoted.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public init(_ location: SourceLocation, _ message: String) {
        self.init(file: location.file, line: location.line, column: location.column, message: message)
    }

    public var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    /// "file:line:column: message" ("file: message" when the file could not be read).
    public var description: String { "\(location): \(message)" }
}

/// Every error found in a configuration, in file order (includes inline where they
/// are included). `ConfigParser` throws this whenever there is at least one error;
/// a configuration with any error yields nothing, as ipsecctl loads no rules then.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    public var first: ConfigError? { errors.first }

    /// One error per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
