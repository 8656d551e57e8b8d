//! Server-streaming RPCs as Server-Sent Events and WebSocket, with upstream cancellation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;

/// Reads SSE `data:` lines of `event: message` until `n` arrived.
async fn read_events(reader: &mut BufReader<tokio::net::TcpStream>, n: usize) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    let mut line = String::new();
    while events.len() < n {
        line.clear();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("event in time")
            .expect("read");
        assert!(read > 0, "stream ended early after {events:?}");
        if let Some(data) = line.trim_end().strip_prefix("data: ").or_else(|| line.trim_end().strip_prefix("data:"))
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(data)
        {
            events.push(json);
        }
    }
    events
}

async fn open_sse(env: &Env, query: &str) -> BufReader<tokio::net::TcpStream> {
    let mut stream = tokio::net::TcpStream::connect(env.gateway.addr).await.expect("connect");
    let request = format!("GET /v1/test/ticks?{query} HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.expect("status line");
    assert!(status.contains(" 200 "), "{status}");
    reader
}

#[tokio::test]
async fn a_stream_is_delivered_as_server_sent_events() {
    let env = spawn().await;
    let mut reader = open_sse(&env, "count=3&interval=0.02s").await;
    let events = read_events(&mut reader, 3).await;
    assert_eq!(events, vec![serde_json::json!({"n": 1}), serde_json::json!({"n": 2}), serde_json::json!({"n": 3})]);
}

#[tokio::test]
async fn leaving_an_sse_stream_cancels_the_upstream() {
    let env = spawn().await;
    let mut reader = open_sse(&env, "count=100000&interval=0.02s").await;
    read_events(&mut reader, 2).await;
    assert!(!env.upstream.stream_cancelled.load(Ordering::SeqCst));
    drop(reader);
    let cancelled = festival_testkit::eventually(Duration::from_secs(10), || async {
        env.upstream.stream_cancelled.load(Ordering::SeqCst)
    })
    .await;
    assert!(cancelled, "the upstream stream stops when the browser leaves");
}

#[tokio::test]
async fn a_stream_is_delivered_over_websocket_and_closing_cancels_the_upstream() {
    let env = spawn().await;
    let url = format!("ws://{}/v1/test/ticks?count=100000&interval=0.02s", env.gateway.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket upgrade");
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            got.push(serde_json::from_str::<serde_json::Value>(&text).expect("json")["n"].as_i64().expect("n"));
        }
    }
    assert_eq!(got, vec![1, 2, 3]);
    socket.close(None).await.expect("close");
    drop(socket);
    let cancelled = festival_testkit::eventually(Duration::from_secs(10), || async {
        env.upstream.stream_cancelled.load(Ordering::SeqCst)
    })
    .await;
    assert!(cancelled, "closing the socket cancels the upstream stream");
}
