//! The services behind the gateway: one lazily connected channel per upstream, and gRPC
//! calls made with dynamic messages (no generated client per service).

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Status, Streaming};

use crate::routes::Route;

/// Upstream name → channel. The name is the service's package segment:
/// `festival.identity.v1.IdentityService` is served by upstream `identity`.
#[derive(Clone, Default)]
pub struct Upstreams {
    channels: BTreeMap<String, (String, Channel)>,
}

impl Upstreams {
    pub fn connect(table: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let mut channels = BTreeMap::new();
        for (name, url) in table {
            let channel = Endpoint::from_shared(url.clone())?
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .connect_lazy();
            channels.insert(name.clone(), (url.clone(), channel));
        }
        Ok(Self { channels })
    }

    /// The upstream name that serves a fully-qualified gRPC service.
    pub fn name_for(service: &str) -> Option<&str> {
        service.strip_prefix("festival.")?.split('.').next()
    }

    pub fn serves(&self, service: &str) -> bool {
        Self::name_for(service).is_some_and(|n| self.channels.contains_key(n))
    }

    pub fn channel_for(&self, service: &str) -> Option<Channel> {
        self.channels.get(Self::name_for(service)?).map(|(_, c)| c.clone())
    }

    /// (name, url, channel) of each upstream.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Channel)> {
        self.channels.iter().map(|(n, (u, c))| (n.as_str(), u.as_str(), c.clone()))
    }

    pub async fn unary(
        &self,
        route: &Route,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<DynamicMessage>, Status> {
        let mut grpc = self.client(route)?;
        grpc.ready().await.map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
        grpc.unary(request, path(route)?, DynamicCodec(route.method.output())).await
    }

    pub async fn server_streaming(
        &self,
        route: &Route,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<Streaming<DynamicMessage>>, Status> {
        let mut grpc = self.client(route)?;
        grpc.ready().await.map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
        grpc.server_streaming(request, path(route)?, DynamicCodec(route.method.output())).await
    }

    fn client(&self, route: &Route) -> Result<tonic::client::Grpc<Channel>, Status> {
        let service = route.method.parent_service().full_name().to_owned();
        let channel = self.channel_for(&service).ok_or_else(|| Status::unimplemented("no upstream serves this API"))?;
        Ok(tonic::client::Grpc::new(channel))
    }
}

fn path(route: &Route) -> Result<http::uri::PathAndQuery, Status> {
    http::uri::PathAndQuery::try_from(route.grpc_path()).map_err(|e| Status::internal(e.to_string()))
}

/// Encodes any dynamic message; decodes into the given message type.
struct DynamicCodec(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.0.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding request: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_map_to_upstreams_by_package() {
        assert_eq!(Upstreams::name_for("festival.identity.v1.IdentityService"), Some("identity"));
        assert_eq!(Upstreams::name_for("grpc.health.v1.Health"), None);
    }
}
