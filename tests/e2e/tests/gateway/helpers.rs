use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use festival_gateway::{Config, Running};
use festival_identity::Identity;
use festival_platform::ApiError;
use festival_proto::testing::v1 as pb;
use festival_proto::testing::v1::transcoding_test_service_server::{
    TranscodingTestService, TranscodingTestServiceServer,
};
use festival_testkit::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, Response, Status};

/// The test upstream: echoes, fails on demand, streams ticks and records cancellation.
#[derive(Clone, Default)]
pub struct TestUpstream {
    pub stream_cancelled: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl TranscodingTestService for TestUpstream {
    async fn echo(&self, request: Request<pb::EchoRequest>) -> Result<Response<pb::EchoResponse>, Status> {
        let metadata: BTreeMap<String, String> = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => Some((k.to_string(), v.to_str().ok()?.to_owned())),
                _ => None,
            })
            .collect();
        Ok(Response::new(pb::EchoResponse { echo: Some(request.into_inner()), metadata }))
    }

    async fn echo_book(&self, request: Request<pb::EchoRequest>) -> Result<Response<pb::EchoResponse>, Status> {
        Ok(Response::new(pb::EchoResponse { echo: Some(request.into_inner()), metadata: BTreeMap::new() }))
    }

    async fn fail(&self, request: Request<pb::FailRequest>) -> Result<Response<pb::FailResponse>, Status> {
        let code =
            festival_platform::codes::lookup(&request.into_inner().code).unwrap_or(festival_platform::codes::INTERNAL);
        Err(ApiError::new(code).with_violation("code", "as requested").into())
    }

    async fn download(
        &self,
        request: Request<pb::DownloadRequest>,
    ) -> Result<Response<festival_proto::google::api::HttpBody>, Status> {
        let req = request.into_inner();
        let data = format!("BEGIN:VCALENDAR\r\nX-NAME:{}\r\nEND:VCALENDAR\r\n", req.name).into_bytes();
        let mut response = Response::new(festival_proto::google::api::HttpBody {
            content_type: req.content_type,
            data,
            extensions: Vec::new(),
        });
        let metadata = response.metadata_mut();
        metadata.insert("etag", format!("W/\"v1-{}\"", req.name).parse().expect("etag"));
        metadata.insert("cache-control", "public, max-age=30".parse().expect("cache-control"));
        metadata.insert("x-internal-detail", "never shown".parse().expect("header"));
        Ok(response)
    }

    type TicksStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Tick, Status>> + Send>>;

    async fn ticks(&self, request: Request<pb::TicksRequest>) -> Result<Response<Self::TicksStream>, Status> {
        let req = request.into_inner();
        let interval =
            req.interval.map_or(Duration::from_millis(10), |d| Duration::new(d.seconds as u64, d.nanos as u32));
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let cancelled = self.stream_cancelled.clone();
        tokio::spawn(async move {
            for n in 1..=req.count {
                if tx.send(Ok(pb::Tick { n })).await.is_err() {
                    cancelled.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream_from(rx))))
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    async_stream::stream! {
        while let Some(item) = rx.recv().await {
            yield item;
        }
    }
}

pub struct Env {
    pub identity: TestApp<Identity>,
    pub upstream: TestUpstream,
    pub gateway: Running,
    /// The gateway's clock (manual: rate-limit windows move only when a test advances it).
    pub clock: festival_platform::clock::Clock,
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }
}

/// Identity + test upstream + gateway, isolated like every test.
pub async fn spawn() -> Env {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Env {
    spawn_configured(|_| {}, adjust).await
}

/// As [`spawn_with`], with identity's configuration adjusted too.
pub async fn spawn_configured(
    adjust_identity: impl FnOnce(&mut festival_identity::Config),
    adjust: impl FnOnce(&mut Config),
) -> Env {
    festival_testkit::init_tracing();
    let identity = TestApp::<Identity>::spawn_with(adjust_identity).await;
    let upstream = TestUpstream::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream_addr = listener.local_addr().expect("addr");
    let service = TranscodingTestServiceServer::new(upstream.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut config = Config { listen: "127.0.0.1:0".parse().expect("addr"), ..Default::default() };
    config.upstreams.clear();
    config.upstreams.insert("identity".into(), format!("http://{}", identity.addr));
    config.upstreams.insert("testing".into(), format!("http://{upstream_addr}"));
    config.redis.url = festival_testkit::redis_url();
    config.redis.key_prefix = format!("{}:", identity.name);
    config.telemetry.log_level = "warn".into();
    adjust(&mut config);
    let clock = festival_platform::clock::Clock::manual();
    let gateway = festival_gateway::start_with(config, clock.clone(), festival_proto::TESTING_FILE_DESCRIPTOR_SET)
        .await
        .expect("gateway starts");
    Env { identity, upstream, gateway, clock }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The catalogue code of an error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// One HTTP/1.1 request (`Connection: close`), the way any partner's client would send it.
pub async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

pub async fn get(env: &Env, path: &str) -> HttpResponse {
    http(env.gateway.addr, "GET", path, &[], "").await
}

pub async fn post_json(env: &Env, path: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http(env.gateway.addr, "POST", path, &all, &body.to_string()).await
}
