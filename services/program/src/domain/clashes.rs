//! A festival-goer's clashes between starred performances: two that overlap, or two on
//! different stages with less than the festival's travel time between them. The same
//! sweep as the organiser's conflicts, with the fan as the one "artist" who must be at
//! every starred slot.

use super::conflicts::{self, Conflict, Rules, Slot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Clash<Id> {
    Overlap { first: Id, second: Id },
    TooClose { first: Id, second: Id },
}

/// A starred performance: its id, stage and [start, end) in seconds.
pub struct Starred<Id> {
    pub id: Id,
    pub stage: Id,
    pub start: i64,
    pub end: i64,
}

/// Every clash, sorted. `fan` is any id distinct from nothing in particular: it only
/// groups every slot under one person.
pub fn detect<Id: Copy + Ord>(starred: &[Starred<Id>], fan: Id, travel_seconds: i64) -> Vec<Clash<Id>> {
    let slots: Vec<Slot<Id>> =
        starred.iter().map(|s| Slot { id: s.id, stage: s.stage, artist: fan, start: s.start, end: s.end }).collect();
    let rules = Rules { changeover: &|_| 0, travel: travel_seconds, window: (i64::MIN, i64::MAX) };
    conflicts::detect(&slots, &rules)
        .into_iter()
        .filter_map(|c| match c {
            Conflict::ArtistDoubleBooked { first, second } => Some(Clash::Overlap { first, second }),
            Conflict::ArtistTravel { first, second } => Some(Clash::TooClose { first, second }),
            Conflict::StageOverlap { .. } | Conflict::OutsideFestival { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starred(id: u32, stage: u32, start: i64, end: i64) -> Starred<u32> {
        Starred { id, stage, start: start * 60, end: end * 60 }
    }

    #[test]
    fn overlaps_and_tight_walks_are_clashes_back_to_back_on_one_stage_is_not() {
        let travel = 15 * 60;
        let list = [
            starred(1, 10, 0, 60),    // main stage
            starred(2, 10, 60, 120),  // right after, same stage: fine
            starred(3, 20, 130, 190), // other stage 10 min after #2: too close
            starred(4, 20, 150, 200), // overlaps #3
            starred(5, 30, 300, 360), // alone
        ];
        assert_eq!(
            detect(&list, 0, travel),
            vec![Clash::Overlap { first: 3, second: 4 }, Clash::TooClose { first: 2, second: 3 }]
        );
    }

    fn brute_force(list: &[Starred<u32>], travel: i64) -> Vec<Clash<u32>> {
        let mut out = Vec::new();
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let (first, second) = (a.id.min(b.id), a.id.max(b.id));
                if a.start < b.end && b.start < a.end {
                    out.push(Clash::Overlap { first, second });
                } else if a.stage != b.stage && (b.start - a.end).max(a.start - b.end) < travel {
                    out.push(Clash::TooClose { first, second });
                }
            }
        }
        out.sort();
        out
    }

    proptest::proptest! {
        // Explicit, so a change of proptest's default (or PROPTEST_CASES) cannot silently thin it.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn the_sweep_agrees_with_the_pairwise_check(
            raw in proptest::collection::vec((0u32..4, 0i64..600, 5i64..120), 0..40),
            travel in 0i64..40,
        ) {
            let list: Vec<Starred<u32>> = raw
                .iter()
                .enumerate()
                .map(|(i, &(stage, start, len))| starred(i as u32 + 1, stage, start, start + len))
                .collect();
            proptest::prop_assert_eq!(detect(&list, 0, travel * 60), brute_force(&list, travel * 60));
        }
    }
}
