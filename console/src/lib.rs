//! # pjp-console
//!
//! An operator web console for a prover-job-processor fleet on a
//! [`pjp_postgres`] queue, rendered on the server (HTML, inline SVG, one
//! small script for live refresh, nothing fetched from elsewhere):
//!
//! * **Overview** (`/`): per queue, kind and resource class the jobs
//!   waiting, queued, running, dead and finished in the last minute, the
//!   drain estimate, and the live workers with their leases and last
//!   heartbeat; it refreshes itself.
//! * **Jobs** (`/jobs`): filtered by queue, status, kind, batch or parent,
//!   paged by keyset on the primary key (never a scan of the table); a job's
//!   page (`/jobs/{id}`) shows its budgets, last error, tree, payload and
//!   result.
//! * **Trees** (`/trees`, `/trees/{id}`): a proof tree as a picture, round by
//!   round, coloured by state, with its critical path.
//! * **Timeline** (`/timeline`): the last minutes of the fleet drawn with
//!   [`pjp_timeline`]: lanes per worker, throughput below.
//! * **Actions**: requeue dead jobs, cancel a job or a tree, purge. Every
//!   write needs the admin token ([`ConsoleConfig::admin_token`]); without
//!   one the console is read-only. Writes are POST forms carrying a
//!   per-process CSRF token, checked against the request's `Origin`, from a
//!   `SameSite=Strict`, `HttpOnly` session cookie (or an `Authorization:
//!   Bearer` header, for scripts).
//!
//! It binds to loopback by default and then answers only requests that name
//! a loopback host (no DNS rebinding). The database URL is only ever shown
//! redacted ([`pjp_postgres::redact_url`]).
//!
//! ```no_run
//! use pjp_console::{ConsoleConfig, serve};
//! use pjp_postgres::PgQueue;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = PgQueue::connect("postgres://prover@127.0.0.1/app").await?;
//! let config = ConsoleConfig::new("postgres://prover@127.0.0.1/app")
//!     .admin_token(std::env::var("PJP_ADMIN_TOKEN").ok());
//! serve(queue, config, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod actions;
mod auth;
mod config;
mod error;
mod html;
mod job;
mod jobs;
mod overview;
mod server;
mod state;
mod timeline;
mod tree;

pub use config::{ConsoleConfig, DEFAULT_LISTEN};
pub use error::ConsoleError;
pub use server::{bind, router, serve, serve_on};
