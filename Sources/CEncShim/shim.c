/* CEncShim is header-only; SwiftPM needs one translation unit. */
