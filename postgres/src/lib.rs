//! Durable job queue on PostgreSQL (filled by a later issue).
#![forbid(unsafe_code)]
