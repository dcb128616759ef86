//! Ending a job: the savers ([`saver`], and [`fanout`] for a save that
//! spawns jobs) and the fenced batch statements they share ([`write`]).

pub(crate) mod fanout;
pub(crate) mod saver;
pub(crate) mod write;
