//! Live counters streamed to organisers (Server-Sent Events or a WebSocket through the
//! gateway): a value read now, then again each time it changes, polled at an interval,
//! for a bounded time (the caller's token was checked when the stream opened, so the
//! stream must not outlive it by much), with a cap on open streams per festival and
//! replica (each reads the database on its own).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rpc::RpcStream;
use crate::{ApiError, ApiResult, codes};

/// How a service's live streams behave (a config section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// How often a watched value is read, in milliseconds (at least 100).
    pub watch_interval_ms: u64,
    /// How long one stream lives, in seconds (1 to 3600).
    pub watch_max_secs: u64,
    /// Streams open at once per festival, per replica.
    pub max_watchers_per_festival: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self { watch_interval_ms: 1_000, watch_max_secs: 15 * 60, max_watchers_per_festival: 20 }
    }
}

impl LiveConfig {
    /// Why the settings cannot work, naming the field.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.watch_max_secs == 0 || self.watch_max_secs > 3600 {
            return Some(("watch_max_secs", "must be between 1 and 3600"));
        }
        if self.max_watchers_per_festival == 0 {
            return Some(("max_watchers_per_festival", "must be positive"));
        }
        None
    }
}

/// The streams open per festival on this replica.
#[derive(Debug, Clone, Default)]
pub struct Watchers(Arc<Mutex<HashMap<Uuid, usize>>>);

/// One open stream; dropping it (the stream ended or its caller left) gives the place
/// back.
#[derive(Debug)]
pub struct Watching {
    watchers: Watchers,
    festival_id: Uuid,
}

impl Watchers {
    /// A place for one more stream of `festival_id` (ERR_4005 beyond `max`).
    pub fn open(&self, festival_id: Uuid, max: usize) -> ApiResult<Watching> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(festival_id).or_insert(0);
        if *count >= max {
            return Err(
                ApiError::new(codes::LIMIT_REACHED).with_message(format!("At most {max} live streams per festival"))
            );
        }
        *count += 1;
        Ok(Watching { watchers: self.clone(), festival_id })
    }

    /// Streams open for `festival_id`.
    pub fn count(&self, festival_id: Uuid) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&festival_id).copied().unwrap_or(0)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut open = self.watchers.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.festival_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.festival_id);
            }
        }
    }
}

/// `read()` now, then each value that differs from the last one sent, read every
/// interval until the stream's time is up. A failed first read ends the stream with its
/// error; a later one ends it quietly (the client reconnects).
pub fn changes<T, F, Fut>(config: LiveConfig, watching: Watching, read: F) -> RpcStream<T>
where
    T: Clone + PartialEq + Send + 'static,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<T>> + Send,
{
    let mut ticks = tokio::time::interval(Duration::from_millis(config.watch_interval_ms.max(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let until = tokio::time::Instant::now() + Duration::from_secs(config.watch_max_secs);
    let start = (read, None::<T>, ticks, watching, false);
    let stream = futures::stream::unfold(start, move |(read, last, mut ticks, watching, failed)| async move {
        if failed {
            return None;
        }
        loop {
            if tokio::time::Instant::now() >= until {
                return None;
            }
            ticks.tick().await;
            match read().await {
                Ok(value) if last.as_ref() == Some(&value) => {}
                Ok(value) => return Some((Ok(value.clone()), (read, Some(value), ticks, watching, false))),
                Err(e) if last.is_some() => {
                    tracing::warn!(error = ?e, "a live value is unavailable; the stream ends");
                    return None;
                }
                Err(e) => return Some((Err(tonic::Status::from(e)), (read, None, ticks, watching, true))),
            }
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_festival_has_at_most_max_streams_and_a_closed_one_frees_its_place() {
        let watchers = Watchers::default();
        let festival = Uuid::now_v7();
        let first = watchers.open(festival, 2).expect("first");
        let _second = watchers.open(festival, 2).expect("second");
        assert_eq!(watchers.open(festival, 2).unwrap_err().code.code, "ERR_4005");
        assert!(watchers.open(Uuid::now_v7(), 2).is_ok(), "another festival has its own places");
        drop(first);
        assert_eq!(watchers.count(festival), 1);
        assert!(watchers.open(festival, 2).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn only_changes_are_sent_until_the_time_is_up() {
        let reads = Arc::new(AtomicU32::new(0));
        let counter = reads.clone();
        let config = LiveConfig { watch_interval_ms: 100, watch_max_secs: 1, max_watchers_per_festival: 1 };
        let watchers = Watchers::default();
        let festival = Uuid::now_v7();
        let watching = watchers.open(festival, 1).expect("open");
        // 0, 0, 1, 1, 2, 2, ...: every other read changes.
        let stream = changes(config, watching, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<u32, ApiError>(n / 2) }
        });
        let got: Vec<u32> = stream.map(|r| r.expect("value")).collect().await;
        assert!(got.len() >= 4, "{got:?}");
        assert_eq!(got, (0..got.len() as u32).collect::<Vec<_>>(), "each value once, in order");
        assert!(reads.load(Ordering::SeqCst) as usize >= 2 * got.len() - 1);
        assert_eq!(watchers.count(festival), 0, "the ended stream gave its place back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_read_that_fails_ends_the_stream_with_its_error() {
        let config = LiveConfig::default();
        let watching = Watchers::default().open(Uuid::now_v7(), 1).expect("open");
        let stream = changes(config, watching, || async { Err::<u32, _>(ApiError::new(codes::NOT_FOUND)) });
        let got: Vec<_> = stream.collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(festival_error_code(got[0].as_ref().unwrap_err()), "ERR_4000");
    }

    fn festival_error_code(status: &tonic::Status) -> String {
        crate::error::reason(status).unwrap_or_default()
    }
}
