//! A local SMTP server that accepts every message and keeps it for the test to read: the
//! real mail client (lettre) talks to it by address, as it would to a relay.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// A message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

impl Received {
    /// The body's text with quoted-printable soft line breaks joined and `=3D` decoded
    /// (enough for the links identity sends).
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}

/// Accepts SMTP on a free local port until dropped with the test.
#[derive(Clone)]
pub struct SmtpSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, store.clone()));
            }
        });
        Self { addr, received }
    }

    /// `smtp://127.0.0.1:<port>`, for the service's mail relay setting.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first message to `to` after the first `skip`, waiting up to 10 s for it.
    pub async fn next_to(&self, to: &str, skip: usize) -> Received {
        for _ in 0..200 {
            let found: Vec<Received> = self.received().into_iter().filter(|m| m.to.iter().any(|t| t == to)).collect();
            if let Some(message) = found.into_iter().nth(skip) {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message {skip} to {to} within 10 s");
    }
}

async fn session(socket: tokio::net::TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let reply = |text: &str| format!("{text}\r\n");
    if write.write_all(reply("220 festival-test-sink ESMTP").as_bytes()).await.is_err() {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250 festival-test-sink".to_owned()
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = address(&line[line.len() - rest.len()..]);
            to.clear();
            "250 OK".to_owned()
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            to.push(address(&line[line.len() - rest.len()..]));
            "250 OK".to_owned()
        } else if upper == "DATA" {
            if write.write_all(reply("354 end with <CRLF>.<CRLF>").as_bytes()).await.is_err() {
                return;
            }
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push_str("\r\n");
            }
            let message = Received { from: from.clone(), to: to.clone(), data };
            store.lock().unwrap_or_else(|e| e.into_inner()).push(message);
            "250 queued".to_owned()
        } else if upper == "QUIT" {
            let _ = write.write_all(reply("221 bye").as_bytes()).await;
            return;
        } else {
            "250 OK".to_owned()
        };
        if write.write_all(reply(&answer).as_bytes()).await.is_err() {
            return;
        }
    }
}

/// `<a@b>` (with parameters after it) → `a@b`.
fn address(raw: &str) -> String {
    let raw = raw.trim();
    let inner = raw.strip_prefix('<').and_then(|r| r.split_once('>')).map_or(raw, |(a, _)| a);
    inner.to_owned()
}
