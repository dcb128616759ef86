//! The queue's client side, used by producers and operators as well as
//! workers: the handle and its connection ([`queue`]), enqueueing
//! ([`enqueue`]), reading and repairing the queue ([`admin`]), the schema and
//! its migrations ([`schema`]), the pool, direct or through a transaction
//! pooler ([`db`]), and the orphan collector ([`gc`]).

pub(crate) mod admin;
pub(crate) mod db;
pub(crate) mod enqueue;
pub(crate) mod gc;
pub(crate) mod queue;
pub(crate) mod schema;
