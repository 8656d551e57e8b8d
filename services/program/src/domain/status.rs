//! The festival status workflow: DRAFT → PUBLISHED → ONGOING → COMPLETED, and CANCELLED
//! from any state before COMPLETED. Publishing needs dates and at least one stage.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Draft,
    Published,
    Ongoing,
    Completed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::Draft, Status::Published, Status::Ongoing, Status::Completed, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Published => "PUBLISHED",
            Status::Ongoing => "ONGOING",
            Status::Completed => "COMPLETED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Visible to the public (and listed for anyone).
    pub fn is_public(self) -> bool {
        !matches!(self, Status::Draft)
    }
}

impl TryFrom<String> for Status {
    type Error = super::UnknownValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Status::parse(&s).ok_or(super::UnknownValue { kind: "Status", value: s })
    }
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionError {
    /// Not an edge of the workflow.
    NotAllowed { from: Status, to: Status },
    /// Publishing needs these fields first.
    Incomplete(Vec<&'static str>),
}

/// What publishing checks about a festival.
#[derive(Debug, Clone, Copy)]
pub struct Completeness {
    pub has_dates: bool,
    pub stage_count: usize,
}

pub fn transition(from: Status, to: Status, completeness: Completeness) -> Result<Status, TransitionError> {
    use Status::*;
    let allowed = matches!(
        (from, to),
        (Draft, Published) | (Published, Ongoing) | (Ongoing, Completed) | (Draft | Published | Ongoing, Cancelled)
    );
    if !allowed {
        return Err(TransitionError::NotAllowed { from, to });
    }
    if to == Published {
        let mut missing = Vec::new();
        if !completeness.has_dates {
            missing.push("dates");
        }
        if completeness.stage_count == 0 {
            missing.push("stages");
        }
        if !missing.is_empty() {
            return Err(TransitionError::Incomplete(missing));
        }
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETE: Completeness = Completeness { has_dates: true, stage_count: 2 };

    #[test]
    fn the_happy_path_and_cancellation_before_completion() {
        assert_eq!(transition(Status::Draft, Status::Published, COMPLETE), Ok(Status::Published));
        assert_eq!(transition(Status::Published, Status::Ongoing, COMPLETE), Ok(Status::Ongoing));
        assert_eq!(transition(Status::Ongoing, Status::Completed, COMPLETE), Ok(Status::Completed));
        for from in [Status::Draft, Status::Published, Status::Ongoing] {
            assert_eq!(transition(from, Status::Cancelled, COMPLETE), Ok(Status::Cancelled));
        }
    }

    #[test]
    fn every_other_edge_is_refused() {
        let allowed = [
            (Status::Draft, Status::Published),
            (Status::Published, Status::Ongoing),
            (Status::Ongoing, Status::Completed),
            (Status::Draft, Status::Cancelled),
            (Status::Published, Status::Cancelled),
            (Status::Ongoing, Status::Cancelled),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                if !allowed.contains(&(from, to)) {
                    assert_eq!(
                        transition(from, to, COMPLETE),
                        Err(TransitionError::NotAllowed { from, to }),
                        "{from:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn publishing_needs_dates_and_a_stage() {
        let incomplete = Completeness { has_dates: false, stage_count: 0 };
        assert_eq!(
            transition(Status::Draft, Status::Published, incomplete),
            Err(TransitionError::Incomplete(vec!["dates", "stages"]))
        );
    }
}
