//! Program's configuration: the settings every service has, nothing of its own yet.

use festival_platform::config::{CommonConfig, ServiceConfig};
use serde::{Deserialize, Serialize};

/// Program's configuration: the common part only, for now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonConfig {
        &mut self.common
    }
}
