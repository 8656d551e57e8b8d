//! Who is calling, by network address: one rule for the gateway and every service.
//!
//! Behind `trusted_hops` proxies that each append the address they saw to
//! `X-Forwarded-For`, the client is found by walking back from the connection's peer (the
//! last proxy) past the trusted hops; whatever is further left in the header was written
//! by the client and is never believed. With 0 trusted hops the peer is the client.
//!
//! The gateway resolves the client this way and forwards it upstream as the only entry of
//! `X-Forwarded-For`, so a service behind the gateway (or behind an ingress that appends)
//! counts one trusted hop.

use std::net::IpAddr;

/// The header proxies append to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address from the `X-Forwarded-For` values (in order of appearance) and the
/// connection's peer.
pub fn resolve<'a>(
    forwarded_for: impl IntoIterator<Item = &'a str>,
    peer: Option<IpAddr>,
    trusted_hops: usize,
) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> =
        forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|v| !v.is_empty()).collect();
    // The chain as the last proxy sees it: every forwarded address, then the peer. The
    // peer is the first trusted hop; the client is `trusted_hops` further back.
    let back = trusted_hops.min(forwarded.len());
    match forwarded.len().checked_sub(back) {
        Some(i) if back > 0 => forwarded.get(i).and_then(|a| a.parse().ok()).or(peer),
        _ => peer,
    }
}

/// The client address of an HTTP request.
pub fn of_http(headers: &http::HeaderMap, peer: Option<IpAddr>, trusted_hops: usize) -> Option<IpAddr> {
    resolve(headers.get_all(FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()), peer, trusted_hops)
}

/// The client address of a gRPC call, as the server's [`ResolveLayer`] found it (the
/// peer when the call did not pass that layer, e.g. in a unit test).
pub fn of_grpc<T>(request: &tonic::Request<T>) -> Option<IpAddr> {
    match request.extensions().get::<Client>() {
        Some(Client(address)) => *address,
        None => request.remote_addr().map(|a| a.ip()),
    }
}

/// The resolved client address, in a request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub Option<IpAddr>);

/// Resolves every incoming call's client address with the server's configured
/// `grpc.trusted_proxy_hops`, once, for handlers to read with [`of_grpc`].
#[derive(Debug, Clone, Copy)]
pub struct ResolveLayer {
    trusted_hops: usize,
}

impl ResolveLayer {
    pub fn new(trusted_hops: usize) -> Self {
        Self { trusted_hops }
    }
}

impl<S> tower::Layer<S> for ResolveLayer {
    type Service = Resolve<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Resolve { inner, trusted_hops: self.trusted_hops }
    }
}

#[derive(Debug, Clone)]
pub struct Resolve<S> {
    inner: S,
    trusted_hops: usize,
}

impl<S, B> tower::Service<http::Request<B>> for Resolve<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let peer = request.extensions().get::<tonic::transport::server::TcpConnectInfo>().and_then(|c| c.remote_addr());
        let client = of_http(request.headers(), peer.map(|a| a.ip()), self.trusted_hops);
        request.extensions_mut().insert(Client(client));
        self.inner.call(request)
    }
}

/// The address as a throttle or rate-limit key: IPv4 whole, IPv6 by its /64 (one
/// subscriber's network; the address within it is the client's to choose).
pub fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_client_is_found_past_the_trusted_hops_only() {
        let ingress = Some(ip("10.0.0.1"));
        assert_eq!(resolve(["1.2.3.4"], ingress, 0), ingress);
        assert_eq!(resolve(["6.6.6.6, 203.0.113.7"], ingress, 1), Some(ip("203.0.113.7")));
        assert_eq!(resolve(["6.6.6.6", "203.0.113.7"], ingress, 1), Some(ip("203.0.113.7")));
        assert_eq!(resolve(["6.6.6.6, 203.0.113.7, 198.51.100.2"], ingress, 2), Some(ip("203.0.113.7")));
        assert_eq!(resolve([], ingress, 1), ingress);
        assert_eq!(resolve(["not an address"], ingress, 1), ingress);
    }

    #[test]
    fn ipv6_clients_are_one_bucket_per_64() {
        assert_eq!(bucket(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), bucket(ip("2001:db8:1:2:bbbb::9")));
        assert_eq!(bucket(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("::ffff:203.0.113.7")), "203.0.113.7");
    }

    #[test]
    fn the_layer_resolves_grpc_calls_with_the_configured_hops() {
        use tower::{Layer, Service, ServiceExt};
        let seen = |hops: usize| {
            let mut service = ResolveLayer::new(hops).layer(tower::service_fn(|r: http::Request<()>| async move {
                Ok::<_, std::convert::Infallible>(of_grpc(&tonic::Request::from_http(r)))
            }));
            let mut request = http::Request::new(());
            request.headers_mut().append(FORWARDED_FOR, "6.6.6.6, 203.0.113.7".parse().expect("value"));
            async move { service.ready().await.expect("ready").call(request).await.expect("call") }
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(rt.block_on(seen(1)), Some(ip("203.0.113.7")));
        assert_eq!(rt.block_on(seen(0)), None, "no peer on a request built in a test, and the header is not believed");
    }
}
