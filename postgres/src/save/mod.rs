//! Ending a job: the savers ([`saver`], and [`fanout`] for a save that
//! spawns jobs) and the fenced batch writes they share ([`write`](mod@write)).

pub(crate) mod fanout;
pub(crate) mod saver;
pub(crate) mod write;
