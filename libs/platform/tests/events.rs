//! Outbox relay and inbox consumers against real PostgreSQL and NATS JetStream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use festival_platform::events::consumer::{self, Applied, ConsumerConfig, Handler, IncomingEvent};
use festival_platform::events::relay::OutboxRelay;
use festival_platform::events::{self, EVENT_ID_HEADER, EVENT_TYPE_HEADER, Naming, outbox};
use festival_proto::identity::v1 as pb;
use festival_testkit::{NatsServer, eventually, unique_name};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SUBJECT: &str = "festival.test.thing.happened";

async fn database() -> PgPool {
    let mut common = festival_platform::config::CommonConfig::local_defaults("test", 50999);
    festival_testkit::isolate(&mut common, &unique_name());
    let pool = festival_platform::db::connect(&common.database, true).await.expect("database");
    festival_platform::db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(vec![])).await.expect("migrate");
    sqlx::query("create table effects (event_id uuid not null, user_id text not null)")
        .execute(&pool)
        .await
        .expect("effects");
    pool
}

async fn write_event(pool: &PgPool, user: &str) -> Uuid {
    let mut tx = pool.begin().await.expect("tx");
    let id = outbox::enqueue(&mut tx, SUBJECT, &pb::UserDeleted { user_id: user.into() }).await.expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

#[tokio::test]
async fn an_event_written_while_nats_is_down_is_delivered_once_nats_is_back() {
    let pool = database().await;
    let mut nats = NatsServer::reserve();
    let client = events::connect(&nats.url(), "relay-test").await.expect("client retries in the background");
    let js = jetstream::new(client);
    let naming = Naming::new(&unique_name());
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(OutboxRelay::new(pool.clone(), js.clone(), naming.clone(), "test", 1).run(cancel.clone()));

    let id = write_event(&pool, "u-1").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(outbox::pending(&pool).await.expect("count"), 1, "nothing can be published while NATS is down");

    nats.start().await;
    assert!(
        eventually(Duration::from_secs(30), || async { outbox::pending(&pool).await.unwrap_or(1) == 0 }).await,
        "the relay publishes once NATS is back"
    );
    let mut stream = js.get_stream(naming.stream("test")).await.expect("stream exists");
    assert_eq!(stream.info().await.expect("info").state.messages, 1, "published exactly once");
    let message = stream.get_raw_message(1).await.expect("message 1");
    assert_eq!(message.subject.as_str(), naming.subject(SUBJECT));
    assert_eq!(message.headers.get(EVENT_ID_HEADER).map(|v| v.to_string()), Some(id.to_string()));
    assert_eq!(message.headers.get("Nats-Msg-Id").map(|v| v.to_string()), Some(id.to_string()));
    assert_eq!(
        message.headers.get(EVENT_TYPE_HEADER).map(|v| v.to_string()),
        Some("festival.identity.v1.UserDeleted".into())
    );
    let decoded: pb::UserDeleted = prost::Message::decode(message.payload.as_ref()).expect("protobuf payload");
    assert_eq!(decoded.user_id, "u-1");

    cancel.cancel();
    relay.await.expect("relay stops");
    nats.stop().await;
}

#[tokio::test]
async fn the_relay_publishes_more_than_a_batch_in_order() {
    let pool = database().await;
    let client = events::connect(&festival_testkit::nats_url(), "relay-order").await.expect("nats");
    let js = jetstream::new(client);
    let naming = Naming::new(&unique_name());
    let mut ids = Vec::new();
    for i in 0..250 {
        ids.push(write_event(&pool, &format!("u-{i}")).await);
    }
    let cancel = CancellationToken::new();
    let relay = tokio::spawn(OutboxRelay::new(pool.clone(), js.clone(), naming.clone(), "test", 1).run(cancel.clone()));
    assert!(eventually(Duration::from_secs(30), || async { outbox::pending(&pool).await.unwrap_or(1) == 0 }).await);
    cancel.cancel();
    relay.await.expect("relay stops");

    let stream = js.get_stream(naming.stream("test")).await.expect("stream");
    for (seq, id) in ids.iter().enumerate() {
        let m = stream.get_raw_message(seq as u64 + 1).await.expect("message");
        assert_eq!(m.headers.get(EVENT_ID_HEADER).map(|v| v.to_string()), Some(id.to_string()), "order at {seq}");
    }
}

/// Records each effect; fails the first `fail_first` calls to force redeliveries.
struct RecordEffect {
    calls: Arc<AtomicUsize>,
    fail_first: usize,
}

impl Handler for RecordEffect {
    fn handle<'a>(&'a self, tx: &'a mut PgConnection, event: &'a IncomingEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            let payload: pb::UserDeleted = event.decode()?;
            sqlx::query("insert into effects (event_id, user_id) values ($1, $2)")
                .bind(event.id)
                .bind(&payload.user_id)
                .execute(&mut *tx)
                .await?;
            anyhow::ensure!(call >= self.fail_first, "simulated failure after writing");
            Ok(())
        })
    }
}

async fn effects(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from effects").fetch_one(pool).await.expect("count")
}

#[tokio::test]
async fn applying_the_same_event_twice_has_its_effect_once() {
    let pool = database().await;
    let handler = RecordEffect { calls: Arc::new(AtomicUsize::new(0)), fail_first: 0 };
    let event = IncomingEvent {
        id: Uuid::now_v7(),
        subject: SUBJECT.into(),
        event_type: "festival.identity.v1.UserDeleted".into(),
        payload: prost::Message::encode_to_vec(&pb::UserDeleted { user_id: "u".into() }),
    };
    assert_eq!(consumer::apply(&pool, "c", &event, &handler).await.expect("first"), Applied::Handled);
    assert_eq!(consumer::apply(&pool, "c", &event, &handler).await.expect("second"), Applied::Duplicate);
    assert_eq!(effects(&pool).await, 1);
    // Another consumer has its own inbox.
    assert_eq!(consumer::apply(&pool, "other", &event, &handler).await.expect("other"), Applied::Handled);
}

#[tokio::test]
async fn a_redelivered_event_is_handled_once() {
    let pool = database().await;
    let client = events::connect(&festival_testkit::nats_url(), "consumer-test").await.expect("nats");
    let js = jetstream::new(client);
    let naming = Naming::new(&unique_name());
    events::ensure_stream(&js, &naming, "test", 1).await.expect("stream");

    // The same event reaches the stream twice (as after a relay crash between the publish
    // and the outbox delete, past the duplicate window), and the handler's first attempt
    // fails after writing, so JetStream redelivers it too.
    let event_id = Uuid::now_v7();
    let payload = prost::Message::encode_to_vec(&pb::UserDeleted { user_id: "u-9".into() });
    for attempt in 0..2 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(EVENT_ID_HEADER, event_id.to_string().as_str());
        headers.insert("Nats-Msg-Id", format!("{event_id}-{attempt}").as_str());
        js.publish_with_headers(naming.subject(SUBJECT), headers, payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    let calls = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let config = ConsumerConfig {
        name: "effects".into(),
        stream: naming.stream("test"),
        filter_subject: naming.subject("festival.test.>"),
        ack_wait: Duration::from_secs(5),
    };
    let task = tokio::spawn(consumer::run(
        pool.clone(),
        js.clone(),
        config,
        RecordEffect { calls: calls.clone(), fail_first: 1 },
        cancel.clone(),
    ));

    let stream = js.get_stream(naming.stream("test")).await.expect("stream");
    let settled = eventually(Duration::from_secs(30), || async {
        let Ok(mut c) = stream.get_consumer::<jetstream::consumer::pull::Config>("effects").await else {
            return false;
        };
        match c.info().await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence == 2,
            Err(_) => false,
        }
    })
    .await;
    assert!(settled, "both messages delivered and acknowledged");
    cancel.cancel();
    task.await.expect("consumer stops");

    assert!(calls.load(Ordering::SeqCst) >= 2, "the failed attempt was retried");
    assert_eq!(effects(&pool).await, 1, "the effect happened exactly once");
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where event_id = $1")
        .bind(event_id)
        .fetch_one(&pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 1);
}
