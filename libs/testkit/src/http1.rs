//! A minimal keep-alive HTTP/1.1 client for benchmarks: raw requests in, status out,
//! bodies read by Content-Length or chunked encoding.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A raw `POST` of a JSON body with a bearer token, for [`Conn::roundtrip`].
pub fn post_json(addr: std::net::SocketAddr, path: &str, token: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One keep-alive HTTP/1.1 connection that reads responses by Content-Length or chunks.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: std::net::SocketAddr) -> Self {
        Self { reader: BufReader::new(TcpStream::connect(addr).await.expect("connect")) }
    }

    /// Sends a raw request and reads the whole response; returns the status code.
    pub async fn roundtrip(&mut self, request: &[u8]) -> u16 {
        self.roundtrip_body(request).await.0
    }

    /// Sends a raw request and reads the whole response; returns the status and the body.
    pub async fn roundtrip_body(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        self.reader.get_mut().write_all(request).await.expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("status");
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("header");
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).await.expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("hex size");
                let mut buf = vec![0; size + 2];
                self.reader.read_exact(&mut buf).await.expect("chunk");
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..size]);
            }
        } else {
            body = vec![0; length.unwrap_or(0)];
            self.reader.read_exact(&mut body).await.expect("body");
        }
        (status, body)
    }
}
