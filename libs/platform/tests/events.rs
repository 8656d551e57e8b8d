//! Outbox relay and inbox consumers against real PostgreSQL and NATS JetStream.

use std::time::Duration;

use async_nats::jetstream;
use festival_platform::config::DeliveryConfig;
use festival_platform::events::consumer::{self, Applied, IncomingEvent, Meta, Runtime, Subscription};
use festival_platform::events::relay::OutboxRelay;
use festival_platform::events::{self, EVENT_ID_HEADER, EVENT_TYPE_HEADER, Naming, outbox};
use festival_proto::Event;
use festival_proto::testing::v1 as pb;
use festival_testkit::{NatsServer, eventually, unique_name};
use prost::Name;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SUBJECT: &str = pb::ThingHappened::SUBJECT;
/// The test event's stream (its service is `testing`).
const SERVICE: &str = "testing";

async fn database() -> PgPool {
    let mut common = festival_platform::config::CommonConfig::local_defaults("test", 50999);
    festival_testkit::isolate(&mut common, &unique_name());
    let pool = festival_platform::db::connect(&common.database, true).await.expect("database");
    festival_platform::db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(vec![])).await.expect("migrate");
    sqlx::query("create table effects (event_id uuid not null, user_id text not null, delivered bigint not null)")
        .execute(&pool)
        .await
        .expect("effects");
    pool
}

async fn write_event(pool: &PgPool, user: &str) -> Uuid {
    let mut tx = pool.begin().await.expect("tx");
    let id = outbox::publish(&mut tx, &pb::ThingHappened { user_id: user.into() }).await.expect("publish");
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
    let relay =
        tokio::spawn(OutboxRelay::new(pool.clone(), js.clone(), naming.clone(), SERVICE, 1).run(cancel.clone()));

    let id = write_event(&pool, "u-1").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(outbox::pending(&pool).await.expect("count"), 1, "nothing can be published while NATS is down");

    nats.start().await;
    assert!(
        eventually(Duration::from_secs(30), || async { outbox::pending(&pool).await.unwrap_or(1) == 0 }).await,
        "the relay publishes once NATS is back"
    );
    let mut stream = js.get_stream(naming.stream(SERVICE)).await.expect("stream exists");
    assert_eq!(stream.info().await.expect("info").state.messages, 1, "published exactly once");
    let message = stream.get_raw_message(1).await.expect("message 1");
    assert_eq!(message.subject.as_str(), naming.subject(SUBJECT));
    assert_eq!(message.headers.get(EVENT_ID_HEADER).map(|v| v.to_string()), Some(id.to_string()));
    assert_eq!(message.headers.get("Nats-Msg-Id").map(|v| v.to_string()), Some(id.to_string()));
    assert_eq!(message.headers.get(EVENT_TYPE_HEADER).map(|v| v.to_string()), Some(pb::ThingHappened::full_name()));
    let decoded: pb::ThingHappened = prost::Message::decode(message.payload.as_ref()).expect("protobuf payload");
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
    let relay =
        tokio::spawn(OutboxRelay::new(pool.clone(), js.clone(), naming.clone(), SERVICE, 1).run(cancel.clone()));
    assert!(eventually(Duration::from_secs(30), || async { outbox::pending(&pool).await.unwrap_or(1) == 0 }).await);
    cancel.cancel();
    relay.await.expect("relay stops");

    let stream = js.get_stream(naming.stream(SERVICE)).await.expect("stream");
    for (seq, id) in ids.iter().enumerate() {
        let m = stream.get_raw_message(seq as u64 + 1).await.expect("message");
        assert_eq!(m.headers.get(EVENT_ID_HEADER).map(|v| v.to_string()), Some(id.to_string()), "order at {seq}");
    }
}

/// Records each effect with the delivery that applied it. `flaky…` users fail their first
/// delivery after writing (the write must roll back); `poison` always fails.
async fn record(tx: &mut PgConnection, e: pb::ThingHappened, meta: &Meta) -> anyhow::Result<()> {
    sqlx::query("insert into effects (event_id, user_id, delivered) values ($1, $2, $3)")
        .bind(meta.id)
        .bind(&e.user_id)
        .bind(meta.delivered as i64)
        .execute(&mut *tx)
        .await?;
    anyhow::ensure!(e.user_id != "poison", "poison pill");
    if e.user_id == "malformed" {
        return Err(consumer::permanent("a value this build cannot apply"));
    }
    assert_ne!(e.user_id, "panic", "a handler bug that panics");
    anyhow::ensure!(!(e.user_id.starts_with("flaky") && meta.delivered == 1), "simulated failure after writing");
    Ok(())
}

fn subscription() -> Subscription {
    consumer::follow("effects", record)
}

/// (event id, user id, delivery that applied it) of every effect, in insertion order.
async fn effects(pool: &PgPool) -> Vec<(Uuid, String, i64)> {
    sqlx::query_as("select event_id, user_id, delivered from effects order by ctid")
        .fetch_all(pool)
        .await
        .expect("effects")
}

struct Bus {
    js: jetstream::Context,
    naming: Naming,
}

impl Bus {
    async fn new() -> Self {
        let client = events::connect(&festival_testkit::nats_url(), "consumer-test").await.expect("nats");
        let bus = Self { js: jetstream::new(client), naming: Naming::new(&unique_name()) };
        events::ensure_stream(&bus.js, &bus.naming, SERVICE, 1).await.expect("stream");
        bus
    }

    /// Publishes a message as the relay would, with the given headers (`None`: left out).
    async fn publish(&self, id: Option<Uuid>, event_type: &str, payload: Vec<u8>) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = id {
            headers.insert(EVENT_ID_HEADER, id.to_string().as_str());
        }
        headers.insert(EVENT_TYPE_HEADER, event_type);
        self.js
            .publish_with_headers(self.naming.subject(SUBJECT), headers, payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    async fn good(&self, user: &str) -> Uuid {
        let id = Uuid::now_v7();
        let payload = prost::Message::encode_to_vec(&pb::ThingHappened { user_id: user.into() });
        self.publish(Some(id), &pb::ThingHappened::full_name(), payload).await;
        id
    }

    /// Runs the test subscription until every one of `messages` stream messages is settled.
    async fn consume_until_settled(&self, pool: &PgPool, messages: u64) {
        let delivery =
            DeliveryConfig { max_deliveries: 3, retry_backoff_ms: 20, max_backoff_ms: 100, ack_wait_secs: 5 };
        let rt = Runtime {
            pool: pool.clone(),
            js: self.js.clone(),
            naming: self.naming.clone(),
            delivery,
            stream_replicas: 1,
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(consumer::run(rt, subscription(), cancel.clone()));
        let stream = self.js.get_stream(self.naming.stream(SERVICE)).await.expect("stream");
        let settled = eventually(Duration::from_secs(30), || async {
            let Ok(mut c) = stream.get_consumer::<jetstream::consumer::pull::Config>("effects").await else {
                return false;
            };
            match c.info().await {
                Ok(info) => {
                    info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence == messages
                }
                Err(_) => false,
            }
        })
        .await;
        assert!(settled, "all {messages} messages delivered and acknowledged");
        cancel.cancel();
        task.await.expect("consumer stops");
    }

    /// Every dead letter: (reason, original subject, deliveries, event id header, payload).
    async fn dead_letters(&self) -> Vec<(String, String, String, Option<String>, Vec<u8>)> {
        let Ok(mut stream) = self.js.get_stream(self.naming.stream(consumer::DEAD_LETTER_SERVICE)).await else {
            return Vec::new();
        };
        let count = stream.info().await.expect("info").state.messages;
        let mut out = Vec::new();
        for seq in 1..=count {
            let m = stream.get_raw_message(seq).await.expect("dead letter");
            assert_eq!(m.subject.as_str(), self.naming.subject(&consumer::dead_letter_subject("effects")));
            let header = |name: &str| m.headers.get(name).map(|v| v.to_string());
            out.push((
                header(consumer::DEAD_LETTER_REASON_HEADER).expect("reason"),
                header(consumer::DEAD_LETTER_SUBJECT_HEADER).expect("subject"),
                header(consumer::DEAD_LETTER_DELIVERIES_HEADER).expect("deliveries"),
                header(EVENT_ID_HEADER),
                m.payload.to_vec(),
            ));
        }
        out
    }
}

#[tokio::test]
async fn applying_the_same_event_twice_has_its_effect_once() {
    let pool = database().await;
    let event = IncomingEvent {
        id: Uuid::now_v7(),
        subject: SUBJECT.into(),
        event_type: pb::ThingHappened::full_name(),
        payload: prost::Message::encode_to_vec(&pb::ThingHappened { user_id: "u".into() }),
        delivered: 1,
    };
    let sub = subscription();
    assert_eq!(consumer::apply(&pool, &sub, &event).await.expect("first"), Applied::Handled);
    assert_eq!(consumer::apply(&pool, &sub, &event).await.expect("second"), Applied::Duplicate);
    assert_eq!(effects(&pool).await, vec![(event.id, "u".to_owned(), 1)]);
    // Another consumer has its own inbox.
    let other = consumer::follow("other", record);
    assert_eq!(consumer::apply(&pool, &other, &event).await.expect("other"), Applied::Handled);
    assert_eq!(effects(&pool).await.len(), 2);
}

#[tokio::test]
async fn an_event_of_another_type_is_refused_by_a_typed_subscription() {
    let pool = database().await;
    let event = IncomingEvent {
        id: Uuid::now_v7(),
        subject: SUBJECT.into(),
        event_type: "festival.identity.v1.UserDeleted".into(),
        payload: prost::Message::encode_to_vec(&pb::ThingHappened { user_id: "u".into() }),
        delivered: 1,
    };
    let refused = consumer::apply(&pool, &subscription(), &event).await;
    assert!(matches!(refused, Err(consumer::Failure::Permanent(_))), "{refused:?}");
    assert!(effects(&pool).await.is_empty());
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox").fetch_one(&pool).await.expect("inbox");
    assert_eq!(inbox, 0, "a refused event is not marked handled");
}

#[tokio::test]
async fn a_failed_delivery_is_redelivered_and_applied_once() {
    let pool = database().await;
    let bus = Bus::new().await;
    // Published once; the handler's first attempt fails after writing, so JetStream must
    // redeliver the same message and the second attempt's effect is the only one.
    let id = bus.good("flaky-1").await;
    bus.consume_until_settled(&pool, 1).await;

    assert_eq!(effects(&pool).await, vec![(id, "flaky-1".to_owned(), 2)], "applied once, by the redelivery");
    assert!(bus.dead_letters().await.is_empty());
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where event_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 1);
}

#[tokio::test]
async fn an_undecodable_event_is_dead_lettered_and_the_next_one_still_applied() {
    let pool = database().await;
    let bus = Bus::new().await;
    let bad = Uuid::now_v7();
    let garbage = vec![0xff, 0xff, 0xff, 0x0f];
    bus.publish(Some(bad), &pb::ThingHappened::full_name(), garbage.clone()).await;
    let good = bus.good("after-the-bad-one").await;
    bus.consume_until_settled(&pool, 2).await;

    assert_eq!(effects(&pool).await, vec![(good, "after-the-bad-one".to_owned(), 1)]);
    let dead = bus.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (reason, subject, deliveries, event_id, payload) = &dead[0];
    assert!(reason.contains("undecodable festival.testing.v1.ThingHappened"), "{reason}");
    assert_eq!(subject, &bus.naming.subject(SUBJECT));
    assert_eq!(deliveries, "1", "a payload that cannot decode is not retried");
    assert_eq!(event_id.as_deref(), Some(bad.to_string().as_str()));
    assert_eq!(payload, &garbage, "the dead letter keeps the original bytes");
}

#[tokio::test]
async fn an_event_whose_handler_keeps_failing_is_dead_lettered_after_the_delivery_limit() {
    let pool = database().await;
    let bus = Bus::new().await;
    let poison = bus.good("poison").await;
    let good = bus.good("fine").await;
    bus.consume_until_settled(&pool, 2).await;

    assert_eq!(effects(&pool).await, vec![(good, "fine".to_owned(), 1)], "the poison's writes all rolled back");
    let dead = bus.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].0.contains("poison pill"), "{}", dead[0].0);
    assert_eq!(dead[0].2, "3", "given up after max_deliveries");
    assert_eq!(dead[0].3.as_deref(), Some(poison.to_string().as_str()));
}

#[tokio::test]
async fn forged_messages_without_an_id_or_of_another_type_are_dead_lettered() {
    let pool = database().await;
    let bus = Bus::new().await;
    let payload = prost::Message::encode_to_vec(&pb::ThingHappened { user_id: "forged".into() });
    bus.publish(None, &pb::ThingHappened::full_name(), payload.clone()).await;
    bus.publish(Some(Uuid::now_v7()), "festival.identity.v1.UserDeleted", payload.clone()).await;
    // NATS's own headers are not copied to the dead letter: this one would make the
    // dead-letter stream refuse the copy, and the message would come back forever.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(EVENT_TYPE_HEADER, pb::ThingHappened::full_name().as_str());
    headers.insert("Nats-Expected-Stream", bus.naming.stream(SERVICE).as_str());
    bus.js
        .publish_with_headers(bus.naming.subject(SUBJECT), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let good = bus.good("real").await;
    bus.consume_until_settled(&pool, 4).await;

    assert_eq!(effects(&pool).await, vec![(good, "real".to_owned(), 1)]);
    let reasons: Vec<String> = bus.dead_letters().await.into_iter().map(|d| d.0).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains(EVENT_ID_HEADER), "{}", reasons[0]);
    assert!(reasons[1].contains("festival.identity.v1.UserDeleted"), "{}", reasons[1]);
    assert!(reasons[2].contains(EVENT_ID_HEADER), "{}", reasons[2]);
}

#[tokio::test]
async fn a_handler_s_permanent_verdict_dead_letters_at_once_and_a_panic_is_a_failed_attempt() {
    let pool = database().await;
    let bus = Bus::new().await;
    bus.good("malformed").await;
    bus.good("panic").await;
    let good = bus.good("fine").await;
    bus.consume_until_settled(&pool, 3).await;

    assert_eq!(effects(&pool).await, vec![(good, "fine".to_owned(), 1)], "nothing of the other two was kept");
    let dead = bus.dead_letters().await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].0.contains("a value this build cannot apply"), "{}", dead[0].0);
    assert_eq!(dead[0].2, "1", "a permanent verdict is not retried");
    assert!(dead[1].0.contains("the handler panicked"), "{}", dead[1].0);
    assert_eq!(dead[1].2, "3", "a panic is retried like any failure, then given up");
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox").fetch_one(&pool).await.expect("inbox");
    assert_eq!(inbox, 1, "only the applied event is marked handled");
}
