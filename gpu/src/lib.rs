//! GPU executor (filled by a later issue).
