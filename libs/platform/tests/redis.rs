//! The Redis helper against a real Redis: prefixes keep tests apart.

use deadpool_redis::redis::AsyncCommands;
use festival_platform::config::CommonConfig;
use festival_platform::redis::Redis;

fn redis_for(name: &str) -> Redis {
    let mut common = CommonConfig::local_defaults("test", 50999);
    festival_testkit::isolate(&mut common, name);
    Redis::connect(&common.redis).expect("pool")
}

#[tokio::test]
async fn two_prefixes_never_see_each_others_keys() {
    let (a, b) = (redis_for(&festival_testkit::unique_name()), redis_for(&festival_testkit::unique_name()));
    assert!(a.ping().await, "redis answers");
    let mut conn_a = a.pool.get().await.expect("conn");
    let mut conn_b = b.pool.get().await.expect("conn");
    let _: () = conn_a.set_ex(a.keys().key(&["hold", "1"]), "a", 60).await.expect("set");
    let _: () = conn_b.set_ex(b.keys().key(&["hold", "1"]), "b", 60).await.expect("set");
    let got_a: String = conn_a.get(a.keys().key(&["hold", "1"])).await.expect("get");
    let got_b: String = conn_b.get(b.keys().key(&["hold", "1"])).await.expect("get");
    assert_eq!((got_a.as_str(), got_b.as_str()), ("a", "b"));
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_not_ready() {
    let mut common = CommonConfig::local_defaults("test", 50999);
    common.redis.url = "redis://127.0.0.1:1".into();
    let redis = Redis::connect(&common.redis).expect("pool is lazy");
    assert!(!redis.ping().await);
}
