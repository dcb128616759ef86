//! What is drawn across every lane: an instant [`Marker`] (a crash, a restart)
//! and a period [`Band`] (a partition, an outage).

/// An instant event, `at` seconds from the start.
#[derive(Debug, Clone)]
pub(crate) struct Marker {
    pub(crate) at: f64,
    pub(crate) label: String,
}

/// A period, from `from` to `to` seconds: a shaded range.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub(crate) from: f64,
    pub(crate) to: f64,
    pub(crate) label: String,
}
