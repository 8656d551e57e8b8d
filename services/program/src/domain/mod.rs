//! Program rules, free of I/O: the festival status workflow and publication checks,
//! and schedule conflict detection.

pub mod conflicts;
pub mod festival;
pub mod status;
