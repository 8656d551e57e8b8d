//! What the benchmarks of `scripts/bench` share: closed-loop workers measuring each
//! operation, and the Markdown row they print.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each closed-loop row is measured.
pub const DURATION: Duration = Duration::from_secs(5);
/// How long each closed-loop row runs before it is measured: connections are opened,
/// statements prepared and caches filled, so the row measures the steady state an
/// on-sale runs in, not a cold start.
pub const WARM_UP: Duration = Duration::from_secs(1);

/// One row of a benchmark table: the latencies of the operations done in `elapsed`.
pub struct Row {
    pub label: String,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    pub unit: &'static str,
}

impl Row {
    /// Prints `| label | p50 | p99 | rate unit |`.
    pub fn print(mut self) {
        self.latencies.sort();
        let p = |q: f64| {
            self.latencies
                .get(((self.latencies.len() as f64 - 1.0) * q) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let rate = self.latencies.len() as f64 / self.elapsed.as_secs_f64();
        println!("| {} | {:.2} ms | {:.2} ms | {rate:.0} {} |", self.label, p(0.5), p(0.99), self.unit);
    }
}

/// Runs `concurrency` closed-loop workers for [`WARM_UP`] and then [`DURATION`]; each call
/// of `work` (given the worker's number) started after the warm-up is one measured
/// operation.
pub async fn closed_loop<F, Fut>(label: &str, unit: &'static str, concurrency: usize, work: F) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let started = Instant::now() + WARM_UP;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let work = work.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let t = Instant::now();
                    if t.saturating_duration_since(started) >= DURATION {
                        break;
                    }
                    work(w).await;
                    if t >= started {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    Row { label: label.to_owned(), latencies, elapsed: started.elapsed(), unit }
}
