//! Identity's HTTP client for sign-in providers: hyper over rustls (webpki roots), every
//! exchange bounded in time and in the size of its answer, so a slow or hostile endpoint
//! holds nothing for long.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest answer read: a token answer, an account or a key set is a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Sent with every request (GitHub's API refuses requests without one).
pub const USER_AGENT: &str = "festival-identity";

/// A status and a body.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// `https://` always; `http://` too, which configuration allows outside production
    /// only (local fake providers).
    pub fn new(timeout: Duration) -> Self {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        Self { client, timeout }
    }

    /// Sends the request and reads the whole answer, within the timeout.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} s", self.timeout.as_secs()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_builds_its_tls_stack_and_bounds_answers() {
        // Building it picks rustls's crypto provider: this fails loudly if the build has none.
        let client = HttpClient::new(Duration::from_secs(2));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let big = "x".repeat(MAX_ANSWER_BYTES + 1);
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{big}", big.len());
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let request = http::Request::get(format!("http://{addr}/")).body(Full::default()).expect("request");
        let refused = client.send(request).await.expect_err("too big");
        assert!(format!("{refused:#}").contains("reading the answer"), "{refused:#}");
    }
}
