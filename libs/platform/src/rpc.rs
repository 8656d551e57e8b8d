//! Binding a service's RPCs to tonic, the same way in every service.
//!
//! A service's API type implements its handlers as inherent methods returning
//! [`ApiResult`] and implements [`Authenticate`]; [`bind_rpcs!`](crate::bind_rpcs) writes
//! the tonic trait impl: each RPC authenticates as declared, runs in a span carrying the
//! method and the caller, and calls the method of the same name.
//!
//! | kind | caller | method signature |
//! |---|---|---|
//! | `auth` | a valid token is required | `(caller: Principal, req) -> ApiResult<Resp>` |
//! | `optional` | anonymous callers are served too | `(caller: Option<Principal>, req)` |
//! | `public` | no token is read | `(req)` |
//! | `public_addr` | no token is read | `(client: Option<IpAddr>, req)`, the address from [`client_addr`](crate::client_addr) |
//! | `auth_bearer` | a valid token is required | `(caller: Principal, bearer: String, req)`: the token itself, for a call made on the caller's behalf to another service |
//! | `public_metadata` | no token is read | `(metadata: MetadataMap, req)`: a caller that proves itself otherwise (a provider's signed webhook) |
//! | `auth_addr` | a valid token is required | `(caller: Principal, client: Option<IpAddr>, req)` |
//! | `gate` | a person's or a paired device's token | `(caller: GateCaller, req)` |
//! | `auth_response`, `optional_response`, `public_response` | as above | returns `ApiResult<Response<Resp>>` (cache metadata) |
//!
//! Server-streaming RPCs go in a `streams { … }` block after the unary block, each naming
//! the tonic trait's stream type: `auth watch_x(pb::Req) -> pb::Item as WatchXStream;`,
//! with a handler `(caller, req) -> ApiResult<RpcStream<pb::Item>>` (kinds `auth` and
//! `public`). The caller is checked once, when the stream opens.

use std::future::Future;

use tonic::{Request, Response};

use crate::auth::{GateCaller, Principal};
use crate::error::ApiResult;

/// How an API authenticates its callers.
pub trait Authenticate: Send + Sync {
    /// The caller of a request that must carry a valid access token.
    fn caller<T: Send + Sync>(&self, request: &Request<T>) -> impl Future<Output = ApiResult<Principal>> + Send;

    /// The caller of an RPC a paired device may also call (a gate's). By default only
    /// people: an API whose devices act overrides it (`Verifier::authenticate_gate`).
    fn gate_caller<T: Send + Sync>(&self, request: &Request<T>) -> impl Future<Output = ApiResult<GateCaller>> + Send {
        async move { self.caller(request).await.map(GateCaller::Person) }
    }

    /// The caller when a token is presented; `None` for anonymous calls. A bad token is
    /// still an error (a client that sends one expects it to count).
    fn optional_caller<T: Send + Sync>(
        &self,
        request: &Request<T>,
    ) -> impl Future<Output = ApiResult<Option<Principal>>> + Send {
        async move {
            if request.metadata().get("authorization").is_none() {
                return Ok(None);
            }
            self.caller(request).await.map(Some)
        }
    }
}

/// What a server-streaming handler returns: items or a status that ends the stream.
pub type RpcStream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// Records the authenticated caller on the RPC's span.
pub fn record_caller(caller: &Principal) {
    tracing::Span::current().record("user_id", tracing::field::display(caller.user_id));
}

/// Records a gate's caller: the person, or the device (as `device_id`).
pub fn record_gate_caller(caller: &GateCaller) {
    match caller {
        GateCaller::Person(p) => record_caller(p),
        GateCaller::Device(d) => {
            tracing::Span::current().record("device_id", tracing::field::display(d.id));
        }
    }
}

/// Records the festival an RPC acts on, on its span (called where the id is parsed).
pub fn record_festival(festival_id: uuid::Uuid) {
    tracing::Span::current().record("festival_id", tracing::field::display(festival_id));
}

/// A response with HTTP cache metadata the gateway passes on: a weak ETag (so clients
/// revalidate with `If-None-Match` and get 304), public caching for 30 s when `public`
/// (private and revalidated otherwise), and a file name for downloads.
pub fn cacheable<T>(body: T, tag: &str, public: bool, file: Option<&str>) -> Response<T> {
    let mut response = Response::new(body);
    let metadata = response.metadata_mut();
    let cache_control = if public { "public, max-age=30" } else { "private, no-cache" };
    for (name, value) in [
        ("etag", Some(format!("W/\"{tag}\""))),
        ("cache-control", Some(cache_control.to_owned())),
        ("content-disposition", file.map(|f| format!("inline; filename=\"{f}\""))),
    ] {
        if let Some(value) = value.and_then(|v| v.parse().ok()) {
            metadata.insert(name, value);
        }
    }
    response
}

/// Writes the tonic service impl of `$api` (see the module doc):
///
/// ```ignore
/// festival_platform::bind_rpcs! {
///     ProgramApi => pb::program_service_server::ProgramService {
///         auth create_festival(pb::CreateFestivalRequest) -> pb::Festival;
///         optional get_festival(pb::GetFestivalRequest) -> pb::Festival;
///     }
/// }
/// ```
#[macro_export]
macro_rules! bind_rpcs {
    ($api:ty => $service:path { $($kind:ident $name:ident($req:ty) -> $resp:ty;)* }) => {
        $crate::bind_rpcs! { $api => $service { $($kind $name($req) -> $resp;)* } streams {} }
    };
    ($api:ty => $service:path {
        $($kind:ident $name:ident($req:ty) -> $resp:ty;)*
    } streams {
        $($skind:ident $sname:ident($sreq:ty) -> $sresp:ty as $stype:ident;)*
    }) => {
        #[::tonic::async_trait]
        impl $service for $api {
            $(
                type $stype = $crate::rpc::RpcStream<$sresp>;

                async fn $sname(
                    &self,
                    request: ::tonic::Request<$sreq>,
                ) -> ::std::result::Result<::tonic::Response<Self::$stype>, ::tonic::Status> {
                    use ::tracing::Instrument as _;
                    let span = ::tracing::info_span!(
                        "rpc",
                        method = stringify!($sname),
                        user_id = ::tracing::field::Empty,
                        device_id = ::tracing::field::Empty,
                        festival_id = ::tracing::field::Empty,
                    );
                    async move { $crate::bind_rpcs!(@call $skind self request $sname) }.instrument(span).await
                }
            )*
            $(
                async fn $name(
                    &self,
                    request: ::tonic::Request<$req>,
                ) -> ::std::result::Result<::tonic::Response<$resp>, ::tonic::Status> {
                    use ::tracing::Instrument as _;
                    let span = ::tracing::info_span!(
                        "rpc",
                        method = stringify!($name),
                        user_id = ::tracing::field::Empty,
                        device_id = ::tracing::field::Empty,
                        festival_id = ::tracing::field::Empty,
                    );
                    async move { $crate::bind_rpcs!(@call $kind self request $name) }.instrument(span).await
                }
            )*
        }
    };
    (@call auth $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::caller($self, &$request).await?;
        $crate::rpc::record_caller(&caller);
        Ok(::tonic::Response::new($self.$name(caller, $request.into_inner()).await?))
    }};
    (@call optional $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::optional_caller($self, &$request).await?;
        if let Some(caller) = &caller { $crate::rpc::record_caller(caller); }
        Ok(::tonic::Response::new($self.$name(caller, $request.into_inner()).await?))
    }};
    (@call public $self:ident $request:ident $name:ident) => {{
        Ok(::tonic::Response::new($self.$name($request.into_inner()).await?))
    }};
    (@call auth_addr $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::caller($self, &$request).await?;
        $crate::rpc::record_caller(&caller);
        let client = $crate::client_addr::of_grpc(&$request);
        Ok(::tonic::Response::new($self.$name(caller, client, $request.into_inner()).await?))
    }};
    (@call gate $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::gate_caller($self, &$request).await?;
        $crate::rpc::record_gate_caller(&caller);
        Ok(::tonic::Response::new($self.$name(caller, $request.into_inner()).await?))
    }};
    (@call public_addr $self:ident $request:ident $name:ident) => {{
        let client = $crate::client_addr::of_grpc(&$request);
        Ok(::tonic::Response::new($self.$name(client, $request.into_inner()).await?))
    }};
    (@call auth_bearer $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::caller($self, &$request).await?;
        $crate::rpc::record_caller(&caller);
        let bearer = $crate::auth::bearer_token($request.metadata()).unwrap_or_default().to_owned();
        Ok(::tonic::Response::new($self.$name(caller, bearer, $request.into_inner()).await?))
    }};
    (@call public_metadata $self:ident $request:ident $name:ident) => {{
        let (metadata, _, message) = $request.into_parts();
        Ok(::tonic::Response::new($self.$name(metadata, message).await?))
    }};
    (@call auth_response $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::caller($self, &$request).await?;
        $crate::rpc::record_caller(&caller);
        Ok($self.$name(caller, $request.into_inner()).await?)
    }};
    (@call optional_response $self:ident $request:ident $name:ident) => {{
        let caller = $crate::rpc::Authenticate::optional_caller($self, &$request).await?;
        if let Some(caller) = &caller { $crate::rpc::record_caller(caller); }
        Ok($self.$name(caller, $request.into_inner()).await?)
    }};
    (@call public_response $self:ident $request:ident $name:ident) => {{
        Ok($self.$name($request.into_inner()).await?)
    }};
}
