//! The end of a festival: what a wallet's holder gets back, to which bank account, and
//! the rules an organiser sets for it.

use festival_platform::{ApiError, ApiResult, codes};
use iban::IbanLike;

use super::limits::MAX_RULE_MINOR;

festival_platform::text_enum! {
    /// What becomes of balances nobody claimed by the deadline.
    Unclaimed { Keep = "KEEP", Donate = "DONATE" }
}

/// A festival's refund policy and the account refunds are paid from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Policy {
    pub fee_minor: i64,
    pub min_payout_minor: i64,
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
    #[sqlx(try_from = "String")]
    pub unclaimed: Unclaimed,
    pub debtor_name: String,
    pub debtor_iban: String,
    pub debtor_bic: String,
    pub batch_max: i32,
}

impl Default for Policy {
    /// No fee, no minimum, no deadline yet, unclaimed money kept, no bank account yet.
    fn default() -> Self {
        Self {
            fee_minor: 0,
            min_payout_minor: 0,
            deadline: None,
            unclaimed: Unclaimed::Keep,
            debtor_name: String::new(),
            debtor_iban: String::new(),
            debtor_bic: String::new(),
            batch_max: 1_000,
        }
    }
}

/// Most payouts in one SEPA file: about 400 bytes each, so a file stays well inside a
/// gRPC message (4 MB by default in most clients) and what banks accept.
pub const MAX_BATCH: i32 = 2_000;

/// How long after the festival's end holders have at least to ask for their money.
pub const MIN_CLAIM_DAYS: i64 = 14;

impl Policy {
    /// Rules an organiser may set. The debtor's IBAN is normalised.
    pub fn check(mut self) -> ApiResult<Self> {
        let field = |name: &str, why: &str| ApiError::field(codes::VALIDATION_FAILED, name, why);
        for (name, value) in [("fee_minor", self.fee_minor), ("min_payout_minor", self.min_payout_minor)] {
            if !(0..=MAX_RULE_MINOR).contains(&value) {
                return Err(field(name, "must be between 0 and 100000000"));
            }
        }
        if !(1..=MAX_BATCH).contains(&self.batch_max) {
            return Err(field("batch_max", "must be between 1 and 2000"));
        }
        if !self.debtor_iban.is_empty() {
            self.debtor_iban = sepa_iban("debtor_iban", &self.debtor_iban)?;
        }
        self.debtor_name = sepa_text(self.debtor_name.trim(), 70);
        if !self.debtor_iban.is_empty() && self.debtor_name.is_empty() {
            return Err(field("debtor_name", "is required with debtor_iban"));
        }
        let bic = self.debtor_bic.trim().to_ascii_uppercase();
        if !bic.is_empty() && !is_bic(&bic) {
            return Err(field("debtor_bic", "must be a BIC of 8 or 11 characters"));
        }
        self.debtor_bic = bic;
        Ok(self)
    }

    /// Until when holders may ask for their money: the deadline, but never sooner than
    /// [`MIN_CLAIM_DAYS`] after cashless heard the festival was over (None: not over).
    pub fn claims_until(
        &self,
        over_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let floor = over_at? + chrono::Duration::days(MIN_CLAIM_DAYS);
        Some(self.deadline.map_or(floor, |d| d.max(floor)))
    }

    /// Whether `self` may replace `before` (the stored policy) at `now` for a festival
    /// ending at `end`: a deadline is at least [`MIN_CLAIM_DAYS`] after the festival's
    /// end and in the future, and once announced it only moves later (unclaimed money
    /// is taken at the deadline: holders must be able to rely on it).
    pub fn deadline_allowed(
        &self,
        before: &Policy,
        now: chrono::DateTime<chrono::Utc>,
        end: Option<chrono::DateTime<chrono::Utc>>,
    ) -> ApiResult<()> {
        let refuse = |why: String| Err(ApiError::field(codes::VALIDATION_FAILED, "deadline", why));
        match (before.deadline, self.deadline) {
            (Some(_), None) => return refuse("cannot be removed once set".into()),
            (Some(old), Some(new)) if new < old => return refuse(format!("cannot move earlier than {old}")),
            (Some(old), Some(new)) if new == old => return Ok(()),
            _ => {}
        }
        let Some(deadline) = self.deadline else { return Ok(()) };
        let earliest = end.map_or(now, |end| end.max(now)) + chrono::Duration::days(MIN_CLAIM_DAYS);
        if deadline < earliest {
            return refuse(format!("must be at least {MIN_CLAIM_DAYS} days after the festival's end and from now"));
        }
        Ok(())
    }

    /// Once payouts are open, the terms holders were given only change in their favour:
    /// no higher fee or minimum, and what happens to unclaimed money stays.
    pub fn terms_kept(&self, before: &Policy) -> ApiResult<()> {
        let refuse = |field: &str, why: &str| Err(ApiError::field(codes::VALIDATION_FAILED, field, why));
        if self.fee_minor > before.fee_minor {
            return refuse("fee_minor", "cannot rise once payouts are open");
        }
        if self.min_payout_minor > before.min_payout_minor {
            return refuse("min_payout_minor", "cannot rise once payouts are open");
        }
        if self.unclaimed != before.unclaimed {
            return refuse("unclaimed", "cannot change once payouts are open");
        }
        Ok(())
    }

    /// The fee and what is paid out of a wallet holding `balance`, to a bank account.
    pub fn split(&self, balance: i64) -> ApiResult<(i64, i64)> {
        let fee = self.fee_minor.min(balance);
        let payout = balance - fee;
        if payout <= 0 || payout < self.min_payout_minor {
            return Err(ApiError::new(codes::PAYOUT_BELOW_MINIMUM).with_message(format!(
                "A payout is at least {} after a fee of {} (minor units); the balance can be donated",
                self.min_payout_minor.max(1),
                self.fee_minor
            )));
        }
        Ok((fee, payout))
    }
}

/// Countries whose banks take SEPA credit transfers (EPC's list of the scheme's
/// countries; overseas departments and crown dependencies use their state's IBANs).
const SEPA_COUNTRIES: &[&str] = &[
    "AD", "AL", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GI", "GR", "HR", "HU",
    "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MD", "ME", "MK", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI",
    "SK", "SM", "VA",
];

/// An IBAN a SEPA transfer can pay, in its electronic form: check digits and the
/// country's format verified (ERR_8017 otherwise), spaces dropped.
pub fn sepa_iban(field: &str, raw: &str) -> ApiResult<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let parsed: iban::Iban = compact
        .parse()
        .map_err(|_| ApiError::field(codes::IBAN_INVALID, field, "is not a valid IBAN (check digits or format)"))?;
    if !SEPA_COUNTRIES.contains(&parsed.country_code()) {
        return Err(ApiError::field(codes::IBAN_INVALID, field, "is not an account in a SEPA country"));
    }
    Ok(parsed.electronic_str().to_owned())
}

/// An IBAN as a holder sees it on a receipt: all but the country and the last four
/// characters masked.
pub fn mask_iban(iban: &str) -> String {
    let n = iban.chars().count();
    if n <= 6 {
        return "*".repeat(n);
    }
    let keep_end = n - 4;
    iban.chars().enumerate().map(|(i, c)| if i < 2 || i >= keep_end { c } else { '*' }).collect()
}

fn is_bic(bic: &str) -> bool {
    (bic.len() == 8 || bic.len() == 11)
        && bic.bytes().take(6).all(|b| b.is_ascii_uppercase())
        && bic.bytes().skip(6).all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Text in the character set every SEPA bank takes (EPC's Latin subset: letters,
/// digits, space and `/ - ? : ( ) . , ' +`), at most `max` characters. German umlauts
/// and ß are spelled out, other accents dropped, anything else becomes a space.
pub fn sepa_text(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | ' ' | '/' | '-' | '?' | ':' | '(' | ')' | '.' | ',' | '\'' | '+' => {
                out.push(c)
            }
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'Ä' => out.push_str("Ae"),
            'Ö' => out.push_str("Oe"),
            'Ü' => out.push_str("Ue"),
            'ß' => out.push_str("ss"),
            'à' | 'á' | 'â' | 'ã' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ø' => out.push('o'),
            'ù' | 'ú' | 'û' => out.push('u'),
            'À' | 'Á' | 'Â' | 'Ã' | 'Å' => out.push('A'),
            'Ç' => out.push('C'),
            'È' | 'É' | 'Ê' | 'Ë' => out.push('E'),
            'Ñ' => out.push('N'),
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ø' => out.push('O'),
            _ => out.push(' '),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(max).collect::<String>().trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_by_their_digits_and_their_country() {
        assert_eq!(sepa_iban("iban", "de44 5001 0517 5407 3249 31").unwrap(), "DE44500105175407324931");
        assert_eq!(sepa_iban("iban", "GB82 WEST 1234 5698 7654 32").unwrap(), "GB82WEST12345698765432");
        let code = |raw: &str| sepa_iban("iban", raw).unwrap_err().code.code;
        assert_eq!(code("DE45 5001 0517 5407 3249 31"), "ERR_8017", "a wrong check digit");
        assert_eq!(code("DE44 5001 0517 5407 3249 3"), "ERR_8017", "too short for Germany");
        assert_eq!(code(""), "ERR_8017");
        assert_eq!(code("BR15 0000 0000 0000 1093 2840 814P 2"), "ERR_8017", "valid, but not SEPA");
    }

    #[test]
    fn a_receipt_shows_only_the_country_and_the_last_four() {
        assert_eq!(mask_iban("DE44500105175407324931"), "DE****************4931");
        assert_eq!(mask_iban("DE4"), "***");
    }

    #[test]
    fn the_fee_comes_first_and_what_is_left_must_reach_the_minimum() {
        let policy = Policy { fee_minor: 150, min_payout_minor: 500, ..Policy::default() };
        assert_eq!(policy.split(2_000).unwrap(), (150, 1_850));
        assert_eq!(policy.split(650).unwrap(), (150, 500));
        assert_eq!(policy.split(649).unwrap_err().code.code, "ERR_8016");
        assert_eq!(policy.split(100).unwrap_err().code.code, "ERR_8016", "a fee never takes more than is there");
        assert_eq!(Policy::default().split(1).unwrap(), (0, 1));
        assert_eq!(Policy::default().split(0).unwrap_err().code.code, "ERR_8016", "nothing to pay");
    }

    #[test]
    fn an_organisers_policy_is_checked_and_normalised() {
        let good = Policy {
            debtor_name: "  Sommerfest GmbH ".into(),
            debtor_iban: "de44 5001 0517 5407 3249 31".into(),
            debtor_bic: "inGDdeffxxx".into(),
            ..Policy::default()
        };
        let checked = good.clone().check().unwrap();
        assert_eq!(checked.debtor_iban, "DE44500105175407324931");
        assert_eq!(checked.debtor_name, "Sommerfest GmbH");
        assert_eq!(checked.debtor_bic, "INGDDEFFXXX");
        let field = |p: Policy| p.check().unwrap_err().violations()[0].field.clone();
        assert_eq!(field(Policy { batch_max: 0, ..good.clone() }), "batch_max");
        assert_eq!(field(Policy { batch_max: 2_001, ..good.clone() }), "batch_max");
        assert_eq!(field(Policy { fee_minor: -1, ..good.clone() }), "fee_minor");
        assert_eq!(field(Policy { debtor_bic: "ING".into(), ..good.clone() }), "debtor_bic");
        assert_eq!(field(Policy { debtor_name: " ".into(), ..good.clone() }), "debtor_name");
        assert_eq!(field(Policy { debtor_iban: "DE00".into(), ..good }), "debtor_iban");
    }

    #[test]
    fn a_deadline_leaves_holders_time_and_never_moves_earlier() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let now = at("2026-07-01T00:00:00Z");
        let end = Some(at("2026-07-05T00:00:00Z"));
        let with = |d: &str| Policy { deadline: Some(at(d)), ..Policy::default() };
        let none = Policy::default();
        assert!(with("2026-07-19T00:00:00Z").deadline_allowed(&none, now, end).is_ok());
        assert!(with("2026-07-18T23:59:59Z").deadline_allowed(&none, now, end).is_err(), "14 days after the end");
        assert!(with("2026-07-10T00:00:00Z").deadline_allowed(&none, now, None).is_err(), "14 days from now");
        let set = with("2026-08-01T00:00:00Z");
        assert!(with("2026-07-25T00:00:00Z").deadline_allowed(&set, now, end).is_err(), "earlier");
        assert!(with("2026-08-02T00:00:00Z").deadline_allowed(&set, now, end).is_ok(), "later");
        assert!(none.deadline_allowed(&set, now, end).is_err(), "removed");
        let late = at("2026-08-10T00:00:00Z");
        assert!(set.deadline_allowed(&set, late, end).is_ok(), "kept as it was after it passed");
    }

    #[test]
    fn holders_get_at_least_14_days_from_when_the_festival_was_over() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let with = |d: Option<&str>| Policy { deadline: d.map(at), ..Policy::default() };
        let over = Some(at("2026-07-30T00:00:00Z"));
        assert_eq!(with(Some("2026-08-01T00:00:00Z")).claims_until(None), None, "not over: no end yet");
        assert_eq!(with(Some("2026-08-01T00:00:00Z")).claims_until(over), Some(at("2026-08-13T00:00:00Z")));
        assert_eq!(with(Some("2026-09-01T00:00:00Z")).claims_until(over), Some(at("2026-09-01T00:00:00Z")));
        assert_eq!(with(None).claims_until(over), Some(at("2026-08-13T00:00:00Z")));
    }

    #[test]
    fn once_payouts_are_open_the_terms_only_change_in_the_holders_favour() {
        let before = Policy { fee_minor: 100, min_payout_minor: 500, ..Policy::default() };
        assert!(Policy { fee_minor: 50, min_payout_minor: 0, ..before.clone() }.terms_kept(&before).is_ok());
        let field = |p: Policy| p.terms_kept(&before).unwrap_err().violations()[0].field.clone();
        assert_eq!(field(Policy { fee_minor: 101, ..before.clone() }), "fee_minor");
        assert_eq!(field(Policy { min_payout_minor: 501, ..before.clone() }), "min_payout_minor");
        assert_eq!(field(Policy { unclaimed: Unclaimed::Donate, ..before.clone() }), "unclaimed");
    }

    #[test]
    fn names_are_written_in_the_sepa_character_set() {
        assert_eq!(sepa_text("Jürgen Weiß & Söhne <b>", 70), "Juergen Weiss Soehne b");
        assert_eq!(sepa_text("Zoë O'Brien-Łukasz", 70), "Zoe O'Brien- ukasz");
        assert_eq!(sepa_text("abcdef", 3), "abc");
        assert_eq!(sepa_text("日本", 70), "");
    }
}
