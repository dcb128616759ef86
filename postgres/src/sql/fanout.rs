//! Dynamic fan-out: a save that adds members to an existing group.

/// Grows waiting group `$1` by `$2` members, in the saving transaction and
/// before the save's own completion counts it done, so the group never
/// reaches zero with members still to come. No row: the group is settled
/// or gone.
pub(super) fn grow_group(s: &str) -> String {
    format!(
        "UPDATE {s}.jobs SET waiting_on = waiting_on + $2
         WHERE id = $1 AND status = 'waiting' RETURNING id"
    )
}
