//! The orphan collector's reads: what a blob needs to be kept.

/// Every object-store key a row names (payloads and results), in one scan.
pub(super) fn blob_keys(s: &str) -> String {
    format!(
        "SELECT payload_key FROM {s}.jobs WHERE payload_key IS NOT NULL
         UNION
         SELECT result_key FROM {s}.jobs WHERE result_key IS NOT NULL"
    )
}

/// The claims of the running jobs: their results may be uploaded and not
/// committed yet.
pub(super) fn running_claims(s: &str) -> String {
    format!("SELECT id, token FROM {s}.jobs WHERE status = 'running'")
}
