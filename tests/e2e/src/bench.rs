//! What the benchmarks of `scripts/bench` share: closed-loop workers measuring each
//! operation, and the Markdown row they print.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each closed-loop row runs.
pub const DURATION: Duration = Duration::from_secs(5);

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

/// Runs `concurrency` closed-loop workers for [`DURATION`]; each call of `work` (given the
/// worker's number) is one measured operation.
pub async fn closed_loop<F, Fut>(label: &str, unit: &'static str, concurrency: usize, work: F) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let work = work.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < DURATION {
                    let t = Instant::now();
                    work(w).await;
                    latencies.push(t.elapsed());
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
