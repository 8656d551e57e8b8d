//! Program's configuration: the settings every service has, and per-festival limits.

use festival_platform::config::{CommonConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub limits: Limits,
}

/// How much one festival may hold, so one tenant cannot make the service do unbounded
/// work (`PROGRAM__LIMITS__*`). Creating beyond a limit is refused with `ERR_4005`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub stages: i64,
    pub artists: i64,
    pub performances: i64,
    pub shifts: i64,
    /// Conflicts listed by CheckSchedule (it also says how many there are in all).
    pub conflicts_reported: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { stages: 100, artists: 2_000, performances: 3_000, shifts: 10_000, conflicts_reported: 500 }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonConfig {
        &mut self.common
    }
}
