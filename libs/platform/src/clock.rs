//! Time that tests control. Code that waits for expiries, windows or intervals reads a
//! [`Clock`] instead of `Instant::now()`/`Utc::now()`; production uses [`Clock::system`],
//! tests a [`Clock::manual`] that moves only when the test calls [`Clock::advance`], so no
//! test sleeps to let time pass.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The system clock, or a manual one. Cheap to clone; clones share the manual time.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

struct Manual {
    instant: Instant,
    time: DateTime<Utc>,
    offset: Mutex<Duration>,
}

impl Clock {
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock stopped at the current time until [`Clock::advance`]d.
    pub fn manual() -> Self {
        Self { manual: Some(Arc::new(Manual { instant: Instant::now(), time: Utc::now(), offset: Mutex::default() })) }
    }

    fn offset(manual: &Manual) -> Duration {
        *manual.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Monotonic time, for intervals.
    pub fn instant(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.instant + Self::offset(m),
        }
    }

    /// Wall time, for timestamps and expiries.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(m) => m.time + Self::offset(m),
        }
    }

    /// Moves a manual clock forward. Panics on the system clock: only tests advance time.
    pub fn advance(&self, by: Duration) {
        let m = self.manual.as_ref().expect("only a manual clock can be advanced");
        let mut offset = m.offset.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *offset += by;
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.manual.is_some() { "Clock(manual)" } else { "Clock(system)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual();
        let (t0, w0) = (clock.instant(), clock.now());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.instant(), clock.now()), (t0, w0), "stopped");
        let other = clock.clone();
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.instant() - t0, Duration::from_secs(90));
        assert_eq!((clock.now() - w0).num_seconds(), 90);
    }
}
