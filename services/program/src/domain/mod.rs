//! Program rules, free of I/O: the festival status workflow and what a valid festival
//! is, schedule conflicts and a fan's clashes, festival-local days, iCalendar output,
//! and shift rules.

pub mod clashes;
pub mod conflicts;
pub mod days;
pub mod festival;
pub mod ics;
pub mod shifts;
pub mod status;
