//! Every RPC of every service, found through the descriptor set (a new service is covered
//! without new code), against hostile input: an empty message, bytes that are not the
//! message, strings with a NUL, a 1 MB string, extreme integers — each with no token, a
//! garbage token and a real one. No answer may be INTERNAL or UNKNOWN, and every refusal
//! carries a catalogued `ERR_XXXX` in its ErrorInfo.

use std::collections::BTreeMap;

use festival_cashless::Cashless;
use festival_identity::Identity;
use festival_payments::Payments;
use festival_platform::codes;
use festival_platform::error::reason;
use festival_program::Program;
use festival_proto::identity::v1 as idpb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_testkit::TestApp;
use festival_testkit::raw::raw_unary;
use festival_ticketing::Ticketing;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, Value};
use tonic::transport::Channel;

/// The shipped services and where they run in this test.
struct Mesh {
    identity: TestApp<Identity>,
    program: TestApp<Program>,
    ticketing: TestApp<Ticketing>,
    payments: TestApp<Payments>,
    cashless: TestApp<Cashless>,
}

impl Mesh {
    async fn start() -> Self {
        let identity = TestApp::<Identity>::spawn().await;
        let identity_url = format!("http://{}", identity.addr);
        let prefix = identity.config.common.nats.subject_prefix.clone();
        let program = TestApp::<Program>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url.clone();
            c.common.nats.subject_prefix = prefix.clone();
        })
        .await;
        let ticketing = TestApp::<Ticketing>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url.clone();
            c.common.nats.subject_prefix = prefix.clone();
        })
        .await;
        // Stripe unreachable (nothing listens at the development default): whatever gets
        // that far must still answer a catalogued code.
        let payments = TestApp::<Payments>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url.clone();
            c.common.nats.subject_prefix = prefix.clone();
            c.stripe.api_base = "http://127.0.0.1:9/".into();
        })
        .await;
        let cashless = TestApp::<Cashless>::spawn_with(|c| {
            c.common.auth.identity_url = identity_url;
            c.common.nats.subject_prefix = prefix;
        })
        .await;
        Self { identity, program, ticketing, payments, cashless }
    }

    /// The channel of the service serving `full_name`, if it is one of ours.
    fn channel(&self, service: &str) -> Option<Channel> {
        match service.split('.').nth(1)? {
            "identity" => Some(self.identity.channel.clone()),
            "program" => Some(self.program.channel.clone()),
            "ticketing" => Some(self.ticketing.channel.clone()),
            "payments" => Some(self.payments.channel.clone()),
            "cashless" => Some(self.cashless.channel.clone()),
            _ => None,
        }
    }
}

/// Hostile variants of a method's request: (what, bytes).
fn variants(input: &MessageDescriptor) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("empty message".to_owned(), Vec::new()),
        ("undecodable bytes".to_owned(), vec![0x0a, 0x64, b'x']),
        ("wrong wire types".to_owned(), vec![0xff; 12]),
    ];
    let filled = |string: &dyn Fn() -> String, int: i64| {
        let mut m = DynamicMessage::new(input.clone());
        for field in input.fields() {
            let value = match field.kind() {
                Kind::String => Value::String(string()),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                    Value::I32(int.clamp(i32::MIN.into(), i32::MAX.into()) as i32)
                }
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int),
                Kind::Uint32 | Kind::Fixed32 => Value::U32(u32::MAX),
                Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::MAX),
                Kind::Enum(_) => Value::EnumNumber(int.clamp(i32::MIN.into(), i32::MAX.into()) as i32),
                Kind::Bool => Value::Bool(true),
                _ => continue,
            };
            let value = if field.is_list() { Value::List(vec![value]) } else { value };
            if field.is_map() {
                continue;
            }
            m.set_field(&field, value);
        }
        m.encode_to_vec()
    };
    out.push(("strings with a NUL, extreme integers".into(), filled(&|| "\0abc".to_owned(), i64::MAX)));
    out.push(("control characters, negative extremes".into(), filled(&|| "a\u{1b}[2J\u{7}".to_owned(), i64::MIN)));
    out.push(("1 MB strings".into(), filled(&|| "x".repeat(1024 * 1024), -1)));
    out
}

async fn real_token(mesh: &Mesh) -> String {
    let mut id = IdentityServiceClient::new(mesh.identity.channel.clone());
    let email = format!("{}@example.org", festival_testkit::unique_name());
    let password = "correct horse battery staple".to_owned();
    id.register(idpb::RegisterRequest { email: email.clone(), password: password.clone(), ..Default::default() })
        .await
        .expect("register");
    id.login(idpb::LoginRequest { email, password, ..Default::default() })
        .await
        .expect("login")
        .into_inner()
        .access_token
}

async fn call(
    channel: Channel,
    method: &MethodDescriptor,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    match token {
        None => raw_unary(channel, &path, body).await.map(drop),
        Some(token) => festival_testkit::raw::raw_unary_authed(channel, &path, body, token).await.map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_rpc_of_any_service_answers_hostile_input_with_a_server_error() {
    let mesh = Mesh::start().await;
    let token = real_token(&mesh).await;
    let pool = DescriptorPool::decode(festival_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let catalogue: Vec<&str> = codes::ALL.iter().map(|c| c.code).collect();
    let mut tried: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for service in pool.services() {
        // Every shipped service runs here: a new one that does not is a failure, not a skip.
        let channel = mesh.channel(service.full_name()).unwrap_or_else(|| {
            panic!("{} is in the descriptor set but not in this test's Mesh: add it", service.full_name())
        });
        for method in service.methods() {
            if method.is_client_streaming() || method.is_server_streaming() {
                continue;
            }
            for (what, body) in variants(&method.input()) {
                for (who, token) in [
                    ("no token", None),
                    ("a garbage token", Some("garbage.token.here")),
                    ("a real token", Some(token.as_str())),
                ] {
                    *tried.entry(service.full_name().to_owned()).or_default() += 1;
                    let Err(status) = call(channel.clone(), &method, body.clone(), token).await else { continue };
                    let code = reason(&status);
                    let server_error = matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown);
                    let catalogued = code.as_deref().is_some_and(|c| catalogue.contains(&c));
                    if server_error || !catalogued {
                        failures.push(format!(
                            "{} {what} with {who}: {:?} {code:?} {}",
                            method.full_name(),
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    assert!(tried.get("festival.identity.v1.IdentityService").is_some_and(|n| *n > 100), "{tried:?}");
    assert!(tried.get("festival.program.v1.ProgramService").is_some_and(|n| *n > 300), "{tried:?}");
    assert!(tried.get("festival.ticketing.v1.TicketingService").is_some_and(|n| *n > 100), "{tried:?}");
    assert!(
        failures.is_empty(),
        "{} answers were server errors or uncatalogued:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
