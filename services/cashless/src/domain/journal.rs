//! The tamper-evident journal: every transaction, in the order it was chained, is
//! hashed with the previous link's hash (SHA-256 over a canonical, length-prefixed
//! encoding), starting from a genesis hash of the festival; closures sign the chain's
//! head with the festival's journal key (Ed25519). Altering, deleting or reordering any
//! stored transaction changes a hash the next link or a closure holds, so [`Verifier`]
//! finds it. This is the inalterability French cash-register law asks of sales software;
//! a German TSE would sign the same canonical bytes per transaction (see SECURITY.md).

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub type Hash = [u8; 32];

/// Everything stored about a transaction that the chain vouches for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Record {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub kind: String,
    pub currency: String,
    pub amount_minor: i64,
    pub wallet_id: Uuid,
    pub wallet_change_minor: i64,
    pub balance_after_minor: i64,
    pub counterpart_id: Option<Uuid>,
    pub counterpart_balance_after_minor: Option<i64>,
    pub actor_id: Uuid,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    pub charge_day: Option<chrono::NaiveDate>,
    pub day_spent_after_minor: Option<i64>,
    pub daily_cap_minor: Option<i64>,
    /// (account, signed amount), ordered by account.
    #[sqlx(skip)]
    pub entries: Vec<(Uuid, i64)>,
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The bytes a link hashes: every field, length-prefixed, entries in account order.
pub fn canonical(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    field(&mut out, r.id.as_bytes());
    field(&mut out, r.festival_id.as_bytes());
    field(&mut out, r.kind.as_bytes());
    field(&mut out, r.currency.as_bytes());
    field(&mut out, &r.amount_minor.to_be_bytes());
    field(&mut out, r.wallet_id.as_bytes());
    field(&mut out, &r.wallet_change_minor.to_be_bytes());
    field(&mut out, &r.balance_after_minor.to_be_bytes());
    field(&mut out, r.counterpart_id.as_ref().map(|c| c.as_bytes().as_slice()).unwrap_or_default());
    field(&mut out, &r.counterpart_balance_after_minor.map(i64::to_be_bytes).unwrap_or_default());
    field(&mut out, r.actor_id.as_bytes());
    field(&mut out, r.reason.as_bytes());
    field(&mut out, &r.created_at.timestamp_micros().to_be_bytes());
    field(&mut out, r.idempotency_key.as_deref().unwrap_or_default().as_bytes());
    let day = r.charge_day.map(|d| d.to_string()).unwrap_or_default();
    field(&mut out, day.as_bytes());
    field(&mut out, &r.day_spent_after_minor.map(i64::to_be_bytes).unwrap_or_default());
    field(&mut out, &r.daily_cap_minor.map(i64::to_be_bytes).unwrap_or_default());
    let mut entries = r.entries.clone();
    entries.sort();
    field(&mut out, &(entries.len() as u64).to_be_bytes());
    for (account, amount) in entries {
        field(&mut out, account.as_bytes());
        field(&mut out, &amount.to_be_bytes());
    }
    out
}

/// Where a festival's chain starts: bound to the festival, so two chains cannot be swapped.
pub fn genesis(festival: Uuid) -> Hash {
    Sha256::new_with_prefix(b"festival-journal/v1/genesis").chain_update(festival.as_bytes()).finalize().into()
}

/// The link after `prev` for `record`.
pub fn link(prev: &Hash, record: &Record) -> Hash {
    Sha256::new_with_prefix(b"festival-journal/v1/link")
        .chain_update(prev)
        .chain_update(canonical(record))
        .finalize()
        .into()
}

/// What a closure signs: the festival, the chain's length and head, and when.
pub fn closure_bytes(festival: Uuid, seq: i64, head: &[u8], closed_at: DateTime<Utc>) -> Vec<u8> {
    let mut out = b"festival-journal/v1/closure".to_vec();
    field(&mut out, festival.as_bytes());
    field(&mut out, &seq.to_be_bytes());
    field(&mut out, head);
    field(&mut out, &closed_at.timestamp_micros().to_be_bytes());
    out
}

pub fn sign_closure(key: &SigningKey, festival: Uuid, seq: i64, head: &[u8], closed_at: DateTime<Utc>) -> Vec<u8> {
    key.sign(&closure_bytes(festival, seq, head, closed_at)).to_bytes().to_vec()
}

/// A stored link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Link {
    pub seq: i64,
    pub transaction_id: Uuid,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A stored closure.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Closure {
    pub seq: i64,
    pub head_hash: Vec<u8>,
    pub closed_at: DateTime<Utc>,
    pub signature: Vec<u8>,
}

/// Walks a festival's chain link by link (in `seq` order), then checks its closures.
/// Collects every problem rather than stopping at the first.
pub struct Verifier {
    festival: Uuid,
    expected_seq: i64,
    head: Hash,
    /// The chain's hash after each link, for the closures (seq → hash).
    heads: std::collections::BTreeMap<i64, Hash>,
    pub problems: Vec<String>,
}

/// Problems reported at most; a wholesale rewrite would otherwise list millions.
const MAX_PROBLEMS: usize = 100;

impl Verifier {
    pub fn new(festival: Uuid) -> Self {
        let head = genesis(festival);
        // A closure of the empty chain signs the genesis hash.
        Self { festival, expected_seq: 1, head, heads: [(0, head)].into(), problems: Vec::new() }
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// The next stored link and the transaction it names (None: it is gone).
    pub fn link(&mut self, l: &Link, record: Option<&Record>) {
        if l.seq != self.expected_seq {
            self.problem(format!(
                "journal link {} where {} was expected (a link is missing or moved)",
                l.seq, self.expected_seq
            ));
        }
        if l.prev_hash != self.head {
            self.problem(format!("journal link {} does not follow the link before it", l.seq));
        }
        match record {
            None => {
                self.problem(format!("journal link {} names transaction {}, which is gone", l.seq, l.transaction_id))
            }
            Some(r) if r.festival_id != self.festival => {
                self.problem(format!("journal link {} names transaction {} of another festival", l.seq, r.id))
            }
            Some(r) => {
                let recomputed = link(&self.head, r);
                if recomputed.as_slice() != l.hash.as_slice() {
                    self.problem(format!("transaction {} (journal link {}) was altered", r.id, l.seq));
                }
            }
        }
        // Go on from what is stored, so one bad link is reported once, not for the rest.
        self.head = l.hash.as_slice().try_into().unwrap_or([0; 32]);
        self.heads.insert(l.seq, self.head);
        self.expected_seq = l.seq + 1;
    }

    /// Links walked so far.
    pub fn chained(&self) -> i64 {
        self.expected_seq - 1
    }

    /// A closure must sign the hash the chain had at its `seq`, with the festival's key.
    pub fn closure(&mut self, c: &Closure, key: &VerifyingKey) {
        let signed = Signature::from_slice(&c.signature)
            .ok()
            .is_some_and(|s| key.verify(&closure_bytes(self.festival, c.seq, &c.head_hash, c.closed_at), &s).is_ok());
        if !signed {
            self.problem(format!("closure at link {} is not signed by the festival's journal key", c.seq));
        }
        match self.heads.get(&c.seq) {
            Some(h) if h.as_slice() == c.head_hash.as_slice() => {}
            Some(_) => self.problem(format!("the chain up to link {} changed after it was closed", c.seq)),
            None => self.problem(format!("closure at link {} but the chain is shorter (links were deleted)", c.seq)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(festival: Uuid, n: i64) -> Record {
        Record {
            id: Uuid::now_v7(),
            festival_id: festival,
            kind: "PAYMENT".into(),
            currency: "EUR".into(),
            amount_minor: 100 + n,
            wallet_id: Uuid::new_v4(),
            wallet_change_minor: -(100 + n),
            balance_after_minor: 1_000,
            counterpart_id: Some(Uuid::new_v4()),
            counterpart_balance_after_minor: None,
            actor_id: Uuid::new_v4(),
            reason: String::new(),
            created_at: DateTime::from_timestamp_micros(1_780_000_000_000_000 + n).expect("time"),
            idempotency_key: Some(format!("sale-{n}")),
            charge_day: chrono::NaiveDate::from_ymd_opt(2026, 7, 10),
            day_spent_after_minor: Some(100 + n),
            daily_cap_minor: Some(0),
            entries: vec![(Uuid::new_v4(), 100 + n), (Uuid::new_v4(), -(100 + n))],
        }
    }

    fn chain(festival: Uuid, records: &[Record]) -> Vec<Link> {
        let mut head = genesis(festival);
        let mut links = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let hash = link(&head, r);
            links.push(Link { seq: i as i64 + 1, transaction_id: r.id, prev_hash: head.to_vec(), hash: hash.to_vec() });
            head = hash;
        }
        links
    }

    fn verify(festival: Uuid, links: &[Link], records: &[Record]) -> Vec<String> {
        let mut v = Verifier::new(festival);
        for l in links {
            v.link(l, records.iter().find(|r| r.id == l.transaction_id));
        }
        v.problems
    }

    #[test]
    fn an_untouched_chain_verifies_and_any_change_is_found() {
        let f = Uuid::new_v4();
        let records: Vec<Record> = (0..5).map(|n| record(f, n)).collect();
        let links = chain(f, &records);
        assert_eq!(verify(f, &links, &records), Vec::<String>::new());

        let mut altered = records.clone();
        altered[2].amount_minor += 1;
        assert_eq!(verify(f, &links, &altered).len(), 1);
        let mut entry = records.clone();
        entry[3].entries[0].1 += 1;
        assert!(verify(f, &links, &entry)[0].contains("altered"));

        let gone: Vec<Record> = records.iter().filter(|r| r.id != records[1].id).cloned().collect();
        assert!(verify(f, &links, &gone)[0].contains("gone"));

        let mut without = links.clone();
        without.remove(2);
        assert!(!verify(f, &without, &records).is_empty(), "a deleted link breaks the chain");

        let mut swapped = links.clone();
        let (a, b) = (swapped[1].transaction_id, swapped[2].transaction_id);
        swapped[1].transaction_id = b;
        swapped[2].transaction_id = a;
        assert!(!verify(f, &swapped, &records).is_empty(), "reordering is found");

        assert!(!verify(Uuid::new_v4(), &links, &records).is_empty(), "another festival's chain");
    }

    #[test]
    fn a_closure_vouches_for_the_head_it_signed() {
        let f = Uuid::new_v4();
        let records: Vec<Record> = (0..3).map(|n| record(f, n)).collect();
        let links = chain(f, &records);
        let key = SigningKey::from_bytes(&[7; 32]);
        let at = DateTime::from_timestamp_micros(1_780_000_100_000_000).expect("time");
        let closure = |seq: i64, head: &[u8]| Closure {
            seq,
            head_hash: head.to_vec(),
            closed_at: at,
            signature: sign_closure(&key, f, seq, head, at),
        };
        let check = |links: &[Link], c: &Closure, k: &VerifyingKey| {
            let mut v = Verifier::new(f);
            for l in links {
                v.link(l, records.iter().find(|r| r.id == l.transaction_id));
            }
            v.closure(c, k);
            v.problems
        };
        let empty = closure(0, &genesis(f));
        let mut v = Verifier::new(f);
        v.closure(&empty, &key.verifying_key());
        assert!(v.problems.is_empty(), "an empty chain's closure: {:?}", v.problems);
        let good = closure(3, &links[2].hash);
        assert!(check(&links, &good, &key.verifying_key()).is_empty());
        assert_eq!(check(&links, &good, &SigningKey::from_bytes(&[8; 32]).verifying_key()).len(), 1);
        // The last link deleted (and nothing after it to notice): the closure does.
        assert!(check(&links[..2], &good, &key.verifying_key())[0].contains("shorter"));
        // The chain rewritten consistently after closing: the signed head differs.
        let mut rewritten = records.clone();
        rewritten[2].amount_minor = 1;
        let relinked = chain(f, &rewritten);
        let mut v = Verifier::new(f);
        for l in &relinked {
            v.link(l, rewritten.iter().find(|r| r.id == l.transaction_id));
        }
        v.closure(&good, &key.verifying_key());
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    }
}
