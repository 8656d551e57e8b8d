//! Quota arithmetic. A quota counts what it caps: `held` (reserved by holds) and `sold`
//! (issued tickets, used ones included); what remains is available, so
//! `available + held + sold == size` always. A category sits in one or more quotas and
//! its availability is the minimum over them; taking a ticket takes it from each.

use std::collections::BTreeMap;

use uuid::Uuid;

/// A quota's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub size: i64,
    pub held: i64,
    pub sold: i64,
}

impl Counters {
    pub fn available(&self) -> i64 {
        (self.size - self.held - self.sold).max(0)
    }
}

/// How many tickets each quota must give for a set of `(category, quantity)` lines, by
/// quota id in ascending order: the order rows are locked in, so two orders touching the
/// same quotas never wait on each other in a cycle.
pub fn demand(lines: &[(Uuid, i32)], quotas_of: impl Fn(Uuid) -> Vec<Uuid>) -> BTreeMap<Uuid, i64> {
    let mut demand = BTreeMap::new();
    for &(category, quantity) in lines {
        for quota in quotas_of(category) {
            *demand.entry(quota).or_insert(0) += i64::from(quantity);
        }
    }
    demand
}

/// Whether every quota can give what is asked of it.
pub fn fits(demand: &BTreeMap<Uuid, i64>, counters: &BTreeMap<Uuid, Counters>) -> bool {
    demand.iter().all(|(quota, n)| counters.get(quota).is_some_and(|c| c.available() >= *n))
}

/// A category's availability: the minimum over its quotas; 0 in none.
pub fn category_available(quotas: &[Counters]) -> i64 {
    quotas.iter().map(Counters::available).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::{TicketEvent, TicketStatus, transition};
    use proptest::prelude::*;

    #[test]
    fn demand_adds_up_per_quota_in_id_order() {
        let (ga, vip) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (weekend, vip_area) = (Uuid::from_u128(20), Uuid::from_u128(10));
        let quotas_of = |c: Uuid| if c == vip { vec![weekend, vip_area] } else { vec![weekend] };
        let d = demand(&[(ga, 2), (vip, 3)], quotas_of);
        assert_eq!(d.into_iter().collect::<Vec<_>>(), vec![(vip_area, 3), (weekend, 5)]);
        let full = Counters { size: 10, held: 4, sold: 6 };
        assert_eq!((full.available(), category_available(&[Counters { size: 5, held: 0, sold: 0 }, full])), (0, 0));
        assert_eq!(category_available(&[]), 0, "a category in no quota cannot be sold");
    }

    /// One operation on a quota of one category, as the service performs them.
    #[derive(Debug, Clone)]
    enum Op {
        Reserve(i32),
        Expire(usize),
        Pay(usize),
        Cancel(usize),
        Refund(usize),
        CheckIn(usize),
        Transfer(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..5i32).prop_map(Op::Reserve),
            any::<usize>().prop_map(Op::Expire),
            any::<usize>().prop_map(Op::Pay),
            any::<usize>().prop_map(Op::Cancel),
            any::<usize>().prop_map(Op::Refund),
            any::<usize>().prop_map(Op::CheckIn),
            any::<usize>().prop_map(Op::Transfer),
        ]
    }

    /// An issued ticket, and whether its holder came in (a used place is never sold again).
    #[derive(Debug, Clone, Copy)]
    struct Issued {
        status: TicketStatus,
        came_in: bool,
        /// Transferred: its place moved to its successor.
        replaced: bool,
    }

    impl Issued {
        /// Whether it still takes a place on the quota.
        fn takes_a_place(self) -> bool {
            !self.replaced && (matches!(self.status, TicketStatus::Sold | TicketStatus::Used) || self.came_in)
        }
    }

    proptest! {
        /// Tickets move only along the transition table, and the quota's counters always
        /// equal the tickets in each state: `available + held + sold == size`, where sold
        /// counts live tickets and revoked ones whose holder came in, and a transfer moves
        /// a place to the new ticket without touching the quota.
        #[test]
        fn counters_follow_the_tickets_through_any_sequence(size in 1..40i64, ops in proptest::collection::vec(op(), 1..120)) {
            let mut quota = Counters { size, held: 0, sold: 0 };
            // Holds, each a list of tickets; tickets that left a hold live on their own.
            let mut holds: Vec<Vec<TicketStatus>> = Vec::new();
            let mut tickets: Vec<Issued> = Vec::new();
            for op in ops {
                match op {
                    Op::Reserve(n) => {
                        let wanted = BTreeMap::from([(Uuid::nil(), i64::from(n))]);
                        if fits(&wanted, &BTreeMap::from([(Uuid::nil(), quota)])) {
                            quota.held += i64::from(n);
                            let hold = (0..n).map(|_| transition(TicketStatus::Available, TicketEvent::Reserve)).collect::<Option<Vec<_>>>();
                            holds.push(hold.expect("available → reserved"));
                        } else {
                            prop_assert!(quota.available() < i64::from(n), "refused while it fitted");
                        }
                    }
                    Op::Expire(i) | Op::Pay(i) if !holds.is_empty() => {
                        let hold = holds.swap_remove(i % holds.len());
                        let event = if matches!(op, Op::Pay(_)) { TicketEvent::Pay } else { TicketEvent::Release };
                        quota.held -= hold.len() as i64;
                        for t in hold {
                            let next = transition(t, event).expect("reserved tickets may be paid or released");
                            if next == TicketStatus::Sold {
                                quota.sold += 1;
                                tickets.push(Issued { status: next, came_in: false, replaced: false });
                            }
                        }
                    }
                    Op::Cancel(i) | Op::Refund(i) | Op::CheckIn(i) | Op::Transfer(i) if !tickets.is_empty() => {
                        let i = i % tickets.len();
                        let event = match op {
                            Op::Cancel(_) => TicketEvent::Cancel,
                            Op::Refund(_) => TicketEvent::Refund,
                            Op::Transfer(_) => TicketEvent::Transfer,
                            _ => TicketEvent::CheckIn,
                        };
                        if tickets[i].replaced {
                            continue;
                        }
                        if let Some(next) = transition(tickets[i].status, event) {
                            match event {
                                // Frees its place, exactly once, unless its holder came in.
                                TicketEvent::Cancel | TicketEvent::Refund if !tickets[i].came_in => quota.sold -= 1,
                                TicketEvent::CheckIn => tickets[i].came_in = true,
                                TicketEvent::Transfer => {
                                    tickets[i].replaced = true;
                                    tickets.push(Issued { status: TicketStatus::Sold, came_in: false, replaced: false });
                                }
                                _ => {}
                            }
                            tickets[i].status = next;
                        }
                    }
                    _ => {}
                }
                let held: i64 = holds.iter().map(|h| h.len() as i64).sum();
                let sold = tickets.iter().filter(|t| t.takes_a_place()).count() as i64;
                prop_assert_eq!((quota.held, quota.sold), (held, sold));
                prop_assert_eq!(quota.available() + quota.held + quota.sold, quota.size);
                prop_assert!(quota.held >= 0 && quota.sold >= 0 && quota.held + quota.sold <= quota.size);
            }
        }
    }
}
