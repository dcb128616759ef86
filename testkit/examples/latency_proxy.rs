//! A slow link from the command line: forwards 127.0.0.1:PORT to UPSTREAM with
//! a one-way delay, until interrupted.
//!
//! ```sh
//! cargo run --release -p pjp-testkit --example latency_proxy -- 127.0.0.1:5432 50ms
//! # then point a worker at the printed address
//! ```
#![allow(missing_docs)]

use std::time::Duration;

use pjp_testkit::{LatencyProxy, parse_duration};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(upstream), Some(delay)) = (args.next(), args.next()) else {
        anyhow::bail!(
            "usage: latency_proxy UPSTREAM_HOST:PORT ONE_WAY_DELAY (e.g. 127.0.0.1:5432 50ms)"
        );
    };
    let one_way: Duration = parse_duration(&delay).map_err(|e| anyhow::anyhow!("{e}"))?;
    let proxy = LatencyProxy::start(upstream.parse()?, one_way).await?;
    println!(
        "{} -> {upstream}, {one_way:?} each way; Ctrl-C stops",
        proxy.addr()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
