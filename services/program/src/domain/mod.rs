//! Program rules, free of I/O: the festival status workflow and what a valid festival
//! is, schedule conflicts and a fan's clashes, festival-local days, iCalendar output,
//! and shift rules.

pub use festival_platform::text_enum::UnknownValue;

pub mod clashes;
pub mod conflicts;
pub mod days;
pub mod feed;
pub mod festival;
pub mod ics;
pub mod lineup;
pub mod shifts;
pub mod status;
