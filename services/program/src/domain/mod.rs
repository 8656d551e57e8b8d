//! Program rules, free of I/O: the festival status workflow and what a valid festival
//! is, schedule conflicts and a fan's clashes, festival-local days, iCalendar output,
//! and shift rules.

/// An enum stored as text: `as_str`, `parse`, and `TryFrom<String>` (how rows decode it,
/// so a value outside the enum is an error at the store boundary, not a string later).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::UnknownValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s).ok_or($crate::domain::UnknownValue { kind: stringify!($name), value: s })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored text that is none of its enum's values (a bug or a bad migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a {}", self.value, self.kind)
    }
}

impl std::error::Error for UnknownValue {}

pub mod clashes;
pub mod conflicts;
pub mod days;
pub mod feed;
pub mod festival;
pub mod ics;
pub mod lineup;
pub mod shifts;
pub mod status;
