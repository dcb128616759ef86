//! The latency proxy delays both directions, keeps back-to-back bytes back to
//! back, cuts open connections and refuses new ones on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pjp_testkit::LatencyProxy;
use pjp_testkit::wait::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// An echo server; returns its address.
async fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

#[tokio::test]
async fn a_round_trip_costs_twice_the_one_way_latency_and_pipelines() {
    let proxy = LatencyProxy::start(echo().await, Duration::from_millis(50))
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let started = Instant::now();
    assert_eq!(round_trip(&mut client, b"ping").await.unwrap(), b"ping");
    let one = started.elapsed();
    assert!(one >= Duration::from_millis(100), "{one:?}");

    // Ten requests sent back to back come back after one round trip, not ten.
    let started = Instant::now();
    for i in 0..10u8 {
        client.write_all(&[i]).await.unwrap();
    }
    let mut replies = [0u8; 10];
    client.read_exact(&mut replies).await.unwrap();
    assert_eq!(replies, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let ten = started.elapsed();
    assert!(ten >= Duration::from_millis(100), "{ten:?}");
    // Ten tolls in a row would be a second at least; a pipe is one round
    // trip (a generous bound for a loaded machine).
    assert!(ten < Duration::from_millis(1000), "{ten:?}");

    proxy.set_latency(Duration::ZERO);
    assert_eq!(proxy.latency(), Duration::ZERO);
    assert_eq!(round_trip(&mut client, b"fast").await.unwrap(), b"fast");
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn a_cut_closes_open_connections_and_refuse_turns_new_ones_away() {
    let proxy = LatencyProxy::start(echo().await, Duration::ZERO)
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"hello").await.unwrap();
    assert_eq!(proxy.open_connections(), 1);

    assert_eq!(proxy.cut(), 1);
    let mut buf = [0u8; 1];
    // The proxy closed its side: the next read ends (EOF or reset).
    let read = within("a cut connection to end", client.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(proxy.cut_connections(), 1);

    proxy.refuse(true);
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let outcome = within(
        "a refused connection to fail",
        round_trip(&mut refused, b"x"),
    )
    .await;
    assert!(outcome.is_err(), "an outage refuses new connections");

    proxy.refuse(false);
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"back").await.unwrap(), b"back");
    assert_eq!(proxy.accepted(), 2);
}
