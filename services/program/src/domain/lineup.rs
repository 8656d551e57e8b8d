//! The line-up's own values.

festival_platform::text_enum! {
    /// Where a performance stands: drafted, on the public schedule, or called off (still
    /// shown, marked cancelled, so subscribed calendars drop it).
    PerformanceStatus { Draft = "DRAFT", Published = "PUBLISHED", Cancelled = "CANCELLED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text_and_unknown_text_is_refused() {
        for s in PerformanceStatus::ALL {
            assert_eq!(PerformanceStatus::try_from(s.as_str().to_owned()), Ok(*s));
        }
        assert_eq!(PerformanceStatus::ALL.len(), 3);
        let err = PerformanceStatus::try_from("postponed".to_owned()).unwrap_err();
        assert_eq!(err.to_string(), "\"postponed\" is not a PerformanceStatus");
    }
}
