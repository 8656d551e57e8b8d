//! Staff shifts: members of the right role only, never two overlapping shifts for one
//! person (also under concurrent calls), head counts that hold, coverage and hours.

use festival_proto::identity::v1 as idpb;
use festival_proto::program::v1 as pb;

use crate::helpers::*;

fn shift(festival: &str, role: pb::ShiftRole, heads: i32, start: &str, end: &str) -> pb::CreateShiftRequest {
    pb::CreateShiftRequest {
        festival_id: festival.into(),
        place_kind: pb::PlaceKind::Bar as i32,
        place: "North bar".into(),
        role: role as i32,
        head_count: heads,
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
        notes: String::new(),
    }
}

async fn new_festival(c: &mut Client, token: &str, slug: &str) -> String {
    c.create_festival(authed(festival(slug), token)).await.expect("festival").into_inner().id
}

#[tokio::test]
async fn shifts_take_members_of_their_role_refuse_overlaps_and_fill_up_to_their_head_count() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, organizer) = env.user().await;
    let fid = new_festival(&mut c, &organizer, "crew-fest").await;
    let create = |req| {
        let mut c = c.clone();
        let token = organizer.clone();
        async move { c.create_shift(authed(req, &token)).await.expect("shift").into_inner() }
    };
    let bar = create(shift(&fid, pb::ShiftRole::Staff, 2, "2031-06-19T16:00:00Z", "2031-06-19T20:00:00Z")).await;
    let late = create(shift(&fid, pb::ShiftRole::Staff, 1, "2031-06-19T19:00:00Z", "2031-06-19T23:00:00Z")).await;
    let next = create(shift(&fid, pb::ShiftRole::Staff, 1, "2031-06-19T20:00:00Z", "2031-06-19T22:00:00Z")).await;
    let gate = create(shift(&fid, pb::ShiftRole::Security, 3, "2031-06-19T16:00:00Z", "2031-06-19T20:00:00Z")).await;

    let (ana, _) = env.member(&fid, idpb::Role::Staff).await;
    let (bo, bo_token) = env.member(&fid, idpb::Role::Staff).await;
    let (cy, _) = env.member(&fid, idpb::Role::Staff).await;
    let (_, stranger) = env.user().await;
    let assign = |shift: &pb::Shift, user: &str| pb::AssignShiftRequest {
        festival_id: fid.clone(),
        shift_id: shift.id.clone(),
        user_id: user.into(),
    };

    let filled = c.assign_shift(authed(assign(&bar, &ana), &organizer)).await.expect("assign").into_inner();
    assert_eq!(filled.assignees, vec![ana.clone()]);
    c.assign_shift(authed(assign(&bar, &ana), &organizer)).await.expect("assigning twice is a no-op");
    // Ana works 16–20: 19–23 overlaps, 20–22 starts as she finishes.
    assert_eq!(code(c.assign_shift(authed(assign(&late, &ana), &organizer)).await), "ERR_7008");
    c.assign_shift(authed(assign(&next, &ana), &organizer)).await.expect("back to back is fine");
    // Staff cannot take a security shift.
    assert_eq!(code(c.assign_shift(authed(assign(&gate, &ana), &organizer)).await), "ERR_7010");
    // A volunteer signs up for an open shift; the shift is then full.
    let signup = pb::SignUpForShiftRequest { festival_id: fid.clone(), shift_id: bar.id.clone() };
    let full = c.sign_up_for_shift(authed(signup.clone(), &bo_token)).await.expect("sign up").into_inner();
    assert_eq!(full.assignees, vec![ana.clone(), bo.clone()]);
    assert_eq!(code(c.assign_shift(authed(assign(&bar, &cy), &organizer)).await), "ERR_7009");
    // Someone who is not crew cannot see or take shifts.
    assert_eq!(code(c.sign_up_for_shift(authed(signup, &stranger)).await), "ERR_4000");
    let list = pb::ListShiftsRequest { festival_id: fid.clone(), ..Default::default() };
    assert_eq!(code(c.list_shifts(authed(list.clone(), &stranger)).await), "ERR_4000");

    let open = c
        .list_shifts(authed(pb::ListShiftsRequest { open_only: true, ..list.clone() }, &bo_token))
        .await
        .expect("open shifts")
        .into_inner()
        .shifts;
    assert_eq!(
        open.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        [gate.id.clone(), late.id.clone()],
        "by start time"
    );

    let coverage = c
        .get_shift_coverage(authed(pb::GetShiftCoverageRequest { festival_id: fid.clone() }, &organizer))
        .await
        .expect("coverage")
        .into_inner();
    assert_eq!((coverage.shift_count, coverage.fully_staffed), (4, 2));
    let missing: Vec<(String, i32)> = coverage
        .understaffed
        .iter()
        .map(|u| (u.shift.as_ref().map(|s| s.id.clone()).unwrap_or_default(), u.missing))
        .collect();
    assert_eq!(missing, [(gate.id.clone(), 3), (late.id.clone(), 1)]);
    assert_eq!(
        code(c.get_shift_coverage(authed(pb::GetShiftCoverageRequest { festival_id: fid.clone() }, &bo_token)).await),
        "ERR_4000",
        "reports are for organizers; the festival is a draft, so others see nothing"
    );

    let bos = c
        .list_shifts(authed(pb::ListShiftsRequest { mine: true, ..list.clone() }, &bo_token))
        .await
        .expect("my shifts")
        .into_inner()
        .shifts;
    assert_eq!(bos.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![bar.id.clone()]);

    // Withdrawing frees the place.
    let withdraw = pb::UnassignShiftRequest { festival_id: fid.clone(), shift_id: bar.id.clone(), user_id: bo.clone() };
    let after = c.unassign_shift(authed(withdraw, &bo_token)).await.expect("withdraw").into_inner();
    assert_eq!(after.assignees, vec![ana]);
}

#[tokio::test]
async fn worked_hours_count_ended_shifts_and_bad_shifts_are_refused_without_writes() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, organizer) = env.user().await;
    let fid = new_festival(&mut c, &organizer, "hours-fest").await;
    let (ana, _) = env.member(&fid, idpb::Role::Cashier).await;
    let past = c
        .create_shift(authed(
            shift(&fid, pb::ShiftRole::Cashier, 1, "2024-06-19T10:00:00Z", "2024-06-19T14:30:00Z"),
            &organizer,
        ))
        .await
        .expect("past shift")
        .into_inner();
    let future = c
        .create_shift(authed(
            shift(&fid, pb::ShiftRole::Cashier, 1, "2031-06-19T10:00:00Z", "2031-06-19T12:00:00Z"),
            &organizer,
        ))
        .await
        .expect("future shift")
        .into_inner();
    for s in [&past, &future] {
        c.assign_shift(authed(
            pb::AssignShiftRequest { festival_id: fid.clone(), shift_id: s.id.clone(), user_id: ana.clone() },
            &organizer,
        ))
        .await
        .expect("organizers may record past shifts too");
    }
    // A started shift keeps its record; a future one can go, assignments and all.
    let delete = |id: &str| pb::DeleteShiftRequest { festival_id: fid.clone(), shift_id: id.into() };
    assert_eq!(code(c.delete_shift(authed(delete(&past.id), &organizer)).await), "ERR_7012");
    let spare = c
        .create_shift(authed(
            shift(&fid, pb::ShiftRole::Cashier, 1, "2031-06-20T10:00:00Z", "2031-06-20T12:00:00Z"),
            &organizer,
        ))
        .await
        .expect("spare shift")
        .into_inner();
    c.assign_shift(authed(
        pb::AssignShiftRequest { festival_id: fid.clone(), shift_id: spare.id.clone(), user_id: ana.clone() },
        &organizer,
    ))
    .await
    .expect("assign spare");
    c.delete_shift(authed(delete(&spare.id), &organizer)).await.expect("delete a future shift");
    let hours = c
        .get_worked_hours(authed(pb::GetWorkedHoursRequest { festival_id: fid.clone() }, &organizer))
        .await
        .expect("hours")
        .into_inner()
        .people;
    assert_eq!(hours.len(), 1);
    assert_eq!((hours[0].user_id.as_str(), hours[0].shift_count), (ana.as_str(), 2));
    assert_eq!((hours[0].worked_minutes, hours[0].scheduled_minutes), (270, 120));

    let base = shift(&fid, pb::ShiftRole::Staff, 2, "2031-06-19T10:00:00Z", "2031-06-19T12:00:00Z");
    let cases = [
        (pb::CreateShiftRequest { head_count: 0, ..base.clone() }, "ERR_1000"),
        (pb::CreateShiftRequest { end_time: Some(ts("2031-06-19T09:00:00Z")), ..base.clone() }, "ERR_1000"),
        (pb::CreateShiftRequest { end_time: Some(ts("2031-06-21T09:00:00Z")), ..base.clone() }, "ERR_1000"),
        (pb::CreateShiftRequest { role: 0, ..base.clone() }, "ERR_1001"),
        (pb::CreateShiftRequest { role: 42, ..base.clone() }, "ERR_1003"),
        (pb::CreateShiftRequest { place: String::new(), ..base.clone() }, "ERR_1001"),
        (
            pb::CreateShiftRequest { place_kind: pb::PlaceKind::Stage as i32, place: "Main".into(), ..base.clone() },
            "ERR_4000",
        ),
        (pb::CreateShiftRequest { notes: "x".repeat(501), ..base.clone() }, "ERR_1002"),
    ];
    for (req, expected) in cases {
        assert_eq!(code(c.create_shift(authed(req.clone(), &organizer)).await), expected, "{req:?}");
    }
    let count: i64 =
        sqlx::query_scalar("select count(*) from shifts").fetch_one(&env.program.pool).await.expect("count");
    assert_eq!(count, 2, "nothing written");
}

/// Rounds each race test runs; one observed race in any round fails it (or, in the
/// `race-hooks` build with the locks removed, one must be observed).
const RACE_ROUNDS: usize = 5;

/// One volunteer signing up at once for six mutually overlapping shifts: exactly one wins.
/// (Sign-ups take no festival lock, so only the per-person guard stands in the way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sign_ups_never_double_book_a_person() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, organizer) = env.user().await;
    let fid = new_festival(&mut c, &organizer, "race-fest").await;
    let mut double_booked_rounds = 0;
    for round in 0..RACE_ROUNDS {
        let (ana, ana_token) = env.member(&fid, idpb::Role::Staff).await;
        let mut shifts = Vec::new();
        for i in 0..6 {
            let start = format!("{}T08:{:02}:00Z", in_days(30 + round as i64), i * 5);
            let end = format!("{}T12:00:00Z", in_days(30 + round as i64));
            let s = c.create_shift(authed(shift(&fid, pb::ShiftRole::Staff, 1, &start, &end), &organizer)).await;
            shifts.push(s.expect("shift").into_inner().id);
        }
        let calls = shifts
            .iter()
            .map(|id| {
                let mut c = c.clone();
                let req = pb::SignUpForShiftRequest { festival_id: fid.clone(), shift_id: id.clone() };
                let token = ana_token.clone();
                async move { c.sign_up_for_shift(authed(req, &token)).await }
            })
            .collect();
        let results = all_at_once(calls).await;
        assert_eq!(results.len(), 6);
        let won = results.iter().filter(|r| r.is_ok()).count();
        let rows: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "select start_time, end_time from shift_assignments where user_id = $1::uuid order by start_time",
        )
        .bind(&ana)
        .fetch_all(&env.program.pool)
        .await
        .expect("rows");
        assert_eq!(rows.len(), won, "every success is stored, nothing else");
        if won > 1 {
            double_booked_rounds += 1;
            continue;
        }
        assert_eq!(won, 1, "round {round}");
        for r in results.into_iter().filter(|r| r.is_err()) {
            assert_eq!(code(r), "ERR_7008");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(double_booked_rounds > 0, "negative control: without the locks a double booking must show");
    } else {
        assert_eq!(double_booked_rounds, 0, "a person was double-booked");
    }
}

/// Eight volunteers signing up at once for a shift of three: exactly three get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sign_ups_never_overfill_a_shift() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, organizer) = env.user().await;
    let fid = new_festival(&mut c, &organizer, "rush-fest").await;
    let mut volunteers = Vec::new();
    for _ in 0..8 {
        volunteers.push(env.member(&fid, idpb::Role::Staff).await.1);
    }
    let mut overfilled_rounds = 0;
    for round in 0..RACE_ROUNDS {
        let day = in_days(40 + round as i64);
        let popular = c
            .create_shift(authed(
                shift(&fid, pb::ShiftRole::Staff, 3, &format!("{day}T10:00:00Z"), &format!("{day}T12:00:00Z")),
                &organizer,
            ))
            .await
            .expect("shift")
            .into_inner();
        let calls = volunteers
            .iter()
            .map(|token| {
                let mut c = c.clone();
                let req = pb::SignUpForShiftRequest { festival_id: fid.clone(), shift_id: popular.id.clone() };
                let token = token.clone();
                async move { c.sign_up_for_shift(authed(req, &token)).await }
            })
            .collect();
        let results = all_at_once(calls).await;
        assert_eq!(results.len(), 8);
        let taken: i64 = sqlx::query_scalar("select count(*) from shift_assignments where shift_id = $1::uuid")
            .bind(&popular.id)
            .fetch_one(&env.program.pool)
            .await
            .expect("count");
        assert_eq!(taken as usize, results.iter().filter(|r| r.is_ok()).count(), "every success is stored");
        if taken > 3 {
            overfilled_rounds += 1;
            continue;
        }
        assert_eq!(taken, 3, "round {round}");
        for r in results.into_iter().filter(|r| r.is_err()) {
            assert_eq!(code(r), "ERR_7009");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(overfilled_rounds > 0, "negative control: without the locks an overfilled shift must show");
    } else {
        assert_eq!(overfilled_rounds, 0, "a shift was overfilled");
    }
}

/// Identity's membership events can be redelivered out of order; the newest one wins.
#[tokio::test]
async fn membership_events_applied_out_of_order_keep_the_newest_state() {
    use festival_platform::events::consumer::{self, IncomingEvent};
    use festival_proto::Event;
    use prost::{Message, Name};

    let env = spawn().await;
    let (festival, user) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let event = |verb: &str, role: idpb::Role| {
        let (payload, event_type, subject) = if verb == "granted" {
            let e = idpb::MembershipGranted {
                festival_id: festival.to_string(),
                user_id: user.to_string(),
                role: role as i32,
                granted_by: String::new(),
            };
            (e.encode_to_vec(), idpb::MembershipGranted::full_name(), idpb::MembershipGranted::SUBJECT)
        } else {
            let e = idpb::MembershipRevoked {
                festival_id: festival.to_string(),
                user_id: user.to_string(),
                role: role as i32,
                revoked_by: String::new(),
            };
            (e.encode_to_vec(), idpb::MembershipRevoked::full_name(), idpb::MembershipRevoked::SUBJECT)
        };
        IncomingEvent { id: uuid::Uuid::now_v7(), subject: subject.into(), event_type, payload, delivered: 1 }
    };
    // Through program's own subscriptions (inbox included), as the consumer applies them.
    let subscriptions = festival_program::events::consumers();
    let granted = event("granted", idpb::Role::Staff);
    let revoked = event("revoked", idpb::Role::Staff); // later than the grant
    let apply = |e: IncomingEvent| {
        let pool = env.program.pool.clone();
        let subscription =
            subscriptions.iter().find(|s| s.event_type == e.event_type).expect("program follows it").clone();
        async move {
            let applied = consumer::apply(&pool, &subscription, &e).await.expect("apply");
            assert_eq!(applied, consumer::Applied::Handled);
        }
    };
    let holds = || async {
        sqlx::query_scalar::<_, bool>(
            "select exists(select 1 from festival_members where festival_id = $1 and user_id = $2 and active)",
        )
        .bind(festival)
        .bind(user)
        .fetch_one(&env.program.pool)
        .await
        .expect("query")
    };
    apply(revoked).await;
    apply(granted).await; // the older grant arrives last: ignored
    assert!(!holds().await, "the revocation is newer than the grant");
    apply(event("granted", idpb::Role::Staff)).await;
    assert!(holds().await, "a newer grant applies");
}

/// The clashing shift is named only when it is this festival's: another festival's shift
/// id would show a stranger who works where.
#[tokio::test]
async fn an_overlap_with_another_festival_s_shift_does_not_name_that_shift() {
    use tonic_types::StatusExt;
    let env = spawn().await;
    let mut c = env.client();
    let (_, organizer_a) = env.user().await;
    let (_, organizer_b) = env.user().await;
    let fid_a = new_festival(&mut c, &organizer_a, "overlap-a").await;
    let fid_b = new_festival(&mut c, &organizer_b, "overlap-b").await;
    let (worker, _) = env.member(&fid_a, idpb::Role::Staff).await;
    let day = in_days(50);
    let (start, end) = (format!("{day}T10:00:00Z"), format!("{day}T14:00:00Z"));
    let (later, end2) = (format!("{day}T12:00:00Z"), format!("{day}T16:00:00Z"));
    let create = |fid: &str, token: &str, from: &str, to: &str| {
        let (mut c, req, token) = (c.clone(), shift(fid, pb::ShiftRole::Staff, 2, from, to), token.to_owned());
        async move { c.create_shift(authed(req, &token)).await.expect("shift").into_inner().id }
    };
    let at_a = create(&fid_a, &organizer_a, &start, &end).await;
    let other_at_a = create(&fid_a, &organizer_a, &later, &end2).await;
    let at_b = create(&fid_b, &organizer_b, &later, &end2).await;
    let assign = |fid: &str, shift_id: &str, token: &str| {
        let req =
            pb::AssignShiftRequest { festival_id: fid.into(), shift_id: shift_id.into(), user_id: worker.clone() };
        let (mut c, token) = (c.clone(), token.to_owned());
        async move { c.assign_shift(authed(req, &token)).await }
    };
    assign(&fid_a, &at_a, &organizer_a).await.expect("first shift");
    // B's copy of the membership, as identity would publish it.
    festival_testkit::publish_event(
        &env.program.naming(),
        &idpb::MembershipGranted {
            festival_id: fid_b.clone(),
            user_id: worker.clone(),
            role: idpb::Role::Staff as i32,
            granted_by: String::new(),
        },
    )
    .await;
    let seen = festival_testkit::eventually(std::time::Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from festival_members where user_id = $1::uuid and active")
            .bind(&worker)
            .fetch_one(&env.program.pool)
            .await
            .is_ok_and(|n| n == 2)
    })
    .await;
    assert!(seen, "the worker is staff at both festivals");

    let here = assign(&fid_a, &other_at_a, &organizer_a).await.expect_err("overlap at A");
    let info = here.get_details_error_info().expect("error info");
    assert_eq!((info.reason.as_str(), info.metadata.get("shift_id")), ("ERR_7008", Some(&at_a)));
    let elsewhere = assign(&fid_b, &at_b, &organizer_b).await.expect_err("overlap with A's shift");
    let info = elsewhere.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "ERR_7008");
    assert_eq!(info.metadata.get("shift_id"), None, "A's shift is not named to B: {:?}", info.metadata);
}

/// A grant identity made before deleting the account, redelivered after the deletion,
/// does not put the deleted account back on the roster.
#[tokio::test]
async fn a_late_grant_older_than_the_account_s_deletion_changes_nothing() {
    use festival_platform::events::consumer::{self, IncomingEvent};
    use prost::{Message, Name};

    let env = spawn().await;
    let (festival, user) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let granted_id = uuid::Uuid::now_v7(); // the grant happened first...
    let deleted_id = uuid::Uuid::now_v7(); // ...then the account was deleted
    let subscriptions = festival_program::events::consumers();
    let apply = |id: uuid::Uuid, event_type: String, subject: &str, payload: Vec<u8>| {
        let pool = env.program.pool.clone();
        let subscription = subscriptions.iter().find(|s| s.event_type == event_type).expect("followed").clone();
        let event = IncomingEvent { id, subject: subject.into(), event_type, payload, delivered: 1 };
        async move { consumer::apply(&pool, &subscription, &event).await.expect("applied") }
    };
    use festival_proto::Event;
    apply(
        deleted_id,
        idpb::UserDeleted::full_name(),
        idpb::UserDeleted::SUBJECT,
        idpb::UserDeleted { user_id: user.to_string() }.encode_to_vec(),
    )
    .await;
    let grant = idpb::MembershipGranted {
        festival_id: festival.to_string(),
        user_id: user.to_string(),
        role: idpb::Role::Staff as i32,
        granted_by: String::new(),
    };
    apply(granted_id, idpb::MembershipGranted::full_name(), idpb::MembershipGranted::SUBJECT, grant.encode_to_vec())
        .await;
    let on_roster: bool = sqlx::query_scalar(
        "select exists(select 1 from festival_members where festival_id = $1 and user_id = $2 and active)",
    )
    .bind(festival)
    .bind(user)
    .fetch_one(&env.program.pool)
    .await
    .expect("query");
    assert!(!on_roster, "the deletion is newer than the grant");
}
