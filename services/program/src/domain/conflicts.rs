//! Schedule conflicts, all of them at once, in O(n log n + k) for n performances and k
//! conflicts: per stage (overlap including the stage's changeover buffer), per artist
//! (two places at once, or too little travel time between different stages), and
//! slots outside the festival's dates.
//!
//! Each check is a sweep over slots sorted by start with a min-heap of "busy until"
//! times: every slot still busy when the next one starts conflicts with it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A performance as the detector sees it. Times are seconds (any epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<Id> {
    pub id: Id,
    pub stage: Id,
    pub artist: Id,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Conflict<Id> {
    /// Same stage, overlapping once the changeover buffer after `first` is counted.
    StageOverlap { first: Id, second: Id },
    /// The same artist on stage twice at the same time.
    ArtistDoubleBooked { first: Id, second: Id },
    /// The same artist on two different stages with less than the travel time between.
    ArtistTravel { first: Id, second: Id },
    /// The slot starts before or ends after the festival.
    OutsideFestival { slot: Id },
}

/// Settings of a check.
pub struct Rules<'a, Id> {
    /// Changeover buffer after each performance, per stage, in seconds.
    pub changeover: &'a dyn Fn(Id) -> i64,
    /// Minimum time between one artist's slots on different stages, in seconds.
    pub travel: i64,
    /// The festival's [start, end).
    pub window: (i64, i64),
}

/// Every conflict, sorted.
pub fn detect<Id: Copy + Ord>(slots: &[Slot<Id>], rules: &Rules<'_, Id>) -> Vec<Conflict<Id>> {
    detect_at_most(slots, rules, usize::MAX).conflicts
}

/// At most `max` conflicts kept (sorted), and how many there are in all: a schedule of
/// thousands of mutually overlapping drafts cannot make the service hold millions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected<Id> {
    pub conflicts: Vec<Conflict<Id>>,
    pub total: usize,
}

/// [`detect`], keeping at most `max` conflicts and counting the rest.
pub fn detect_at_most<Id: Copy + Ord>(slots: &[Slot<Id>], rules: &Rules<'_, Id>, max: usize) -> Detected<Id> {
    let mut out = Collector { kept: Vec::new(), total: 0, max };
    for s in slots {
        if s.start < rules.window.0 || s.end > rules.window.1 {
            out.push(Conflict::OutsideFestival { slot: s.id });
        }
    }
    for (_, group) in group_by(slots, |s| s.stage) {
        sweep(
            &group,
            |s| s.end + (rules.changeover)(s.stage),
            |a, b| Some(Conflict::StageOverlap { first: a.id.min(b.id), second: a.id.max(b.id) }),
            &mut out,
        );
    }
    for (_, group) in group_by(slots, |s| s.artist) {
        sweep(
            &group,
            |s| s.end + rules.travel.max(0),
            |a, b| {
                let (first, second) = (a.id.min(b.id), a.id.max(b.id));
                if overlaps(a, b) {
                    Some(Conflict::ArtistDoubleBooked { first, second })
                } else if a.stage != b.stage {
                    Some(Conflict::ArtistTravel { first, second })
                } else {
                    None
                }
            },
            &mut out,
        );
    }
    // Each pair is judged once per sweep, so nothing is counted twice; dedup stays as a guard.
    out.kept.sort();
    out.kept.dedup();
    Detected { conflicts: out.kept, total: out.total }
}

/// Keeps the first `max` conflicts found and counts all of them.
struct Collector<Id> {
    kept: Vec<Conflict<Id>>,
    total: usize,
    max: usize,
}

impl<Id> Collector<Id> {
    fn push(&mut self, c: Conflict<Id>) {
        self.total += 1;
        if self.kept.len() < self.max {
            self.kept.push(c);
        }
    }
}

fn overlaps<Id>(a: &Slot<Id>, b: &Slot<Id>) -> bool {
    a.start < b.end && b.start < a.end
}

fn group_by<Id: Copy + Ord>(slots: &[Slot<Id>], key: impl Fn(&Slot<Id>) -> Id) -> BTreeMap<Id, Vec<Slot<Id>>> {
    let mut groups: BTreeMap<Id, Vec<Slot<Id>>> = BTreeMap::new();
    for s in slots {
        groups.entry(key(s)).or_default().push(*s);
    }
    groups
}

/// Sorts by start; each slot is compared with every earlier slot still busy (busy_until >
/// its start). `judge` decides what, if anything, that pair is.
fn sweep<Id: Copy + Ord>(
    group: &[Slot<Id>],
    busy_until: impl Fn(&Slot<Id>) -> i64,
    judge: impl Fn(&Slot<Id>, &Slot<Id>) -> Option<Conflict<Id>>,
    out: &mut Collector<Id>,
) {
    let mut sorted: Vec<&Slot<Id>> = group.iter().collect();
    sorted.sort_by_key(|s| (s.start, s.end));
    let mut active: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (i, slot) in sorted.iter().enumerate() {
        while let Some(Reverse((until, _))) = active.peek() {
            if *until <= slot.start {
                active.pop();
            } else {
                break;
            }
        }
        for Reverse((_, j)) in active.iter() {
            if let Some(c) = judge(sorted[*j], slot) {
                out.push(c);
            }
        }
        active.push(Reverse((busy_until(slot), i)));
    }
}

/// Conflicts in `after` that were not in `before`: what a change broke (conflicts that
/// were already there do not block it).
pub fn new_conflicts<Id: PartialEq>(before: &[Conflict<Id>], after: Vec<Conflict<Id>>) -> Vec<Conflict<Id>> {
    after.into_iter().filter(|c| !before.contains(c)).collect()
}

/// Whether slot `id` is part of conflict `c`.
pub fn involves<Id: PartialEq + Copy>(c: &Conflict<Id>, id: Id) -> bool {
    match *c {
        Conflict::StageOverlap { first, second }
        | Conflict::ArtistDoubleBooked { first, second }
        | Conflict::ArtistTravel { first, second } => first == id || second == id,
        Conflict::OutsideFestival { slot } => slot == id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pile_of_overlapping_slots_keeps_few_conflicts_and_counts_them_all() {
        // 300 sets on one stage at the same time: 300 * 299 / 2 overlaps.
        let slots: Vec<Slot<u32>> = (0..300).map(|i| slot(i, 0, i, 0, 3600)).collect();
        let found = detect_at_most(&slots, &rules(0, 0), 50);
        assert_eq!(found.total, 300 * 299 / 2);
        assert_eq!(found.conflicts.len(), 50);
        assert!(found.conflicts.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert_eq!(detect(&slots, &rules(0, 0)).len(), found.total, "uncapped, every one");
    }

    #[test]
    fn only_conflicts_a_change_adds_are_new_and_each_names_its_slots() {
        let old = Conflict::StageOverlap { first: 1u32, second: 2 };
        let added = Conflict::ArtistTravel { first: 2u32, second: 3 };
        let outside = Conflict::OutsideFestival { slot: 4u32 };
        assert_eq!(new_conflicts(&[old], vec![old, added, outside]), vec![added, outside]);
        assert!(new_conflicts(&[old, added], vec![added]).is_empty());
        assert!(involves(&added, 3) && involves(&added, 2) && !involves(&added, 1));
        assert!(involves(&outside, 4) && !involves(&outside, 2));
    }

    fn slot(id: u32, stage: u32, artist: u32, start: i64, end: i64) -> Slot<u32> {
        Slot { id, stage, artist, start, end }
    }

    fn rules(changeover: i64, travel: i64) -> Rules<'static, u32> {
        let f: &'static dyn Fn(u32) -> i64 = Box::leak(Box::new(move |_| changeover));
        Rules { changeover: f, travel, window: (0, 10_000) }
    }

    #[test]
    fn every_kind_of_conflict_is_listed_at_once() {
        let slots = [
            slot(1, 100, 1, 0, 60),         // main stage
            slot(2, 100, 2, 70, 120),       // starts inside the 15-minute changeover after 1
            slot(3, 200, 1, 30, 90),        // artist 1 on another stage while playing on 100
            slot(4, 200, 2, 130, 150),      // artist 2 needs 30 to walk from 100: only 10
            slot(5, 300, 5, 9_990, 10_100), // ends after the festival
        ];
        let found = detect(&slots, &rules(15, 30));
        assert_eq!(
            found,
            vec![
                Conflict::StageOverlap { first: 1, second: 2 },
                Conflict::ArtistDoubleBooked { first: 1, second: 3 },
                Conflict::ArtistTravel { first: 2, second: 4 },
                Conflict::OutsideFestival { slot: 5 },
            ]
        );
    }

    #[test]
    fn back_to_back_on_one_stage_with_the_buffer_respected_is_fine() {
        let slots = [slot(1, 100, 1, 0, 60), slot(2, 100, 2, 75, 120), slot(3, 100, 1, 135, 200)];
        assert!(detect(&slots, &rules(15, 30)).is_empty());
    }

    /// The reference: every pair, compared directly.
    fn brute_force(slots: &[Slot<u32>], changeover: i64, travel: i64, window: (i64, i64)) -> Vec<Conflict<u32>> {
        let mut out = Vec::new();
        for s in slots {
            if s.start < window.0 || s.end > window.1 {
                out.push(Conflict::OutsideFestival { slot: s.id });
            }
        }
        for (i, a) in slots.iter().enumerate() {
            for b in &slots[i + 1..] {
                let (first, second) = (a.id.min(b.id), a.id.max(b.id));
                let (early, late) = if (a.start, a.end) <= (b.start, b.end) { (a, b) } else { (b, a) };
                if a.stage == b.stage && late.start < early.end + changeover {
                    out.push(Conflict::StageOverlap { first, second });
                }
                if a.artist == b.artist {
                    if a.start < b.end && b.start < a.end {
                        out.push(Conflict::ArtistDoubleBooked { first, second });
                    } else if a.stage != b.stage && late.start < early.end + travel {
                        out.push(Conflict::ArtistTravel { first, second });
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    proptest! {
        // Explicit, so a change of proptest's default (or PROPTEST_CASES) cannot silently thin it.
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_sweep_agrees_with_the_pairwise_check(
            raw in prop::collection::vec((0u32..4, 0u32..5, 0i64..2_000, 1i64..300), 0..40),
            changeover in 0i64..60,
            travel in 0i64..90,
        ) {
            let slots: Vec<Slot<u32>> = raw
                .iter()
                .enumerate()
                .map(|(i, &(stage, artist, start, len))| slot(i as u32, stage, artist, start, start + len))
                .collect();
            let window = (100, 1_900);
            let f = move |_: u32| changeover;
            let fast = detect(&slots, &Rules { changeover: &f, travel, window });
            prop_assert_eq!(fast, brute_force(&slots, changeover, travel, window));
        }
    }
}
