//! Profile fields: display name and language.

use festival_proto::identity::v1 as pb;

pub const MAX_DISPLAY_NAME: usize = 100;

/// The six languages of the platform, stored as ISO 639-1 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Fr,
    En,
    De,
    Es,
    It,
    Pt,
}

impl Language {
    pub const DEFAULT: Language = Language::En;

    pub fn code(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
            Language::De => "de",
            Language::Es => "es",
            Language::It => "it",
            Language::Pt => "pt",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        [Language::Fr, Language::En, Language::De, Language::Es, Language::It, Language::Pt]
            .into_iter()
            .find(|l| l.code() == code)
    }

    pub fn from_proto(l: pb::Language) -> Option<Language> {
        Some(match l {
            pb::Language::Unspecified => return None,
            pb::Language::Fr => Language::Fr,
            pb::Language::En => Language::En,
            pb::Language::De => Language::De,
            pb::Language::Es => Language::Es,
            pb::Language::It => Language::It,
            pb::Language::Pt => Language::Pt,
        })
    }

    pub fn to_proto(self) -> pb::Language {
        match self {
            Language::Fr => pb::Language::Fr,
            Language::En => pb::Language::En,
            Language::De => pb::Language::De,
            Language::Es => pb::Language::Es,
            Language::It => pb::Language::It,
            Language::Pt => pb::Language::Pt,
        }
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
pub fn display_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be blank");
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err("must be at most 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_round_trip_through_codes_and_proto() {
        for code in ["fr", "en", "de", "es", "it", "pt"] {
            let l = Language::from_code(code).expect("known");
            assert_eq!(Language::from_proto(l.to_proto()), Some(l));
            assert_eq!(l.code(), code);
        }
        assert_eq!(Language::from_code("nl"), None);
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(display_name("  Ana  ").as_deref(), Ok("Ana"));
        assert!(display_name("a\u{0007}b").is_err());
        assert!(display_name(&"n".repeat(101)).is_err());
    }
}
