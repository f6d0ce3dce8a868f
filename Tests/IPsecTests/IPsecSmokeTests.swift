import Testing
@testable import IPsec
