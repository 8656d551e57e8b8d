use festival_proto::program::v1 as pb;

use crate::helpers::*;

pub struct Setup {
    pub festival: String,
    pub main: String,
    pub valley: String,
    pub a: String,
    pub b: String,
}

pub async fn setup(c: &mut Client, token: &str, slug: &str) -> Setup {
    let festival = c.create_festival(authed(festival(slug), token)).await.expect("festival").into_inner().id;
    let stage = |name: &str, changeover: i32| pb::CreateStageRequest {
        festival_id: festival.clone(),
        name: name.into(),
        capacity: 1000,
        position: 0,
        changeover_minutes: changeover,
    };
    let main = c.create_stage(authed(stage("Main", 20), token)).await.expect("main").into_inner().id;
    let valley = c.create_stage(authed(stage("Valley", 10), token)).await.expect("valley").into_inner().id;
    let artist = |name: &str| pb::CreateArtistRequest {
        festival_id: festival.clone(),
        name: name.into(),
        genres: vec!["Metal".into()],
        contact: format!("booking@{}.example", name.to_lowercase()),
        ..Default::default()
    };
    let a = c.create_artist(authed(artist("Alpha"), token)).await.expect("a").into_inner().id;
    let b = c.create_artist(authed(artist("Beta"), token)).await.expect("b").into_inner().id;
    Setup { festival, main, valley, a, b }
}

pub async fn perform(
    c: &mut Client,
    token: &str,
    s: &Setup,
    artist: &str,
    stage: &str,
    start: &str,
    end: &str,
) -> String {
    c.create_performance(authed(
        pb::CreatePerformanceRequest {
            festival_id: s.festival.clone(),
            artist_id: artist.into(),
            stage_id: stage.into(),
            start_time: Some(ts(start)),
            end_time: Some(ts(end)),
        },
        token,
    ))
    .await
    .expect("performance")
    .into_inner()
    .id
}

#[tokio::test]
async fn every_kind_of_conflict_is_listed_at_once_and_blocks_publication() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "clash-fest").await;
    let p1 = perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    let p2 = perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-19T19:10:00+02:00", "2027-06-19T20:00:00+02:00").await;
    let p3 =
        perform(&mut c, &token, &s, &s.a, &s.valley, "2027-06-19T18:30:00+02:00", "2027-06-19T19:30:00+02:00").await;
    let p4 =
        perform(&mut c, &token, &s, &s.b, &s.valley, "2027-06-19T20:05:00+02:00", "2027-06-19T21:00:00+02:00").await;
    let p5 = perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-22T18:00:00+02:00", "2027-06-22T19:00:00+02:00").await;

    let found = c
        .check_schedule(authed(pb::CheckScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("check")
        .into_inner()
        .conflicts;
    let mut got: Vec<(i32, Vec<String>)> = found.into_iter().map(|c| (c.kind, sorted(c.performance_ids))).collect();
    got.sort();
    let mut expected = vec![
        (pb::ConflictKind::StageOverlap as i32, sorted(vec![p1.clone(), p2.clone()])),
        (pb::ConflictKind::ArtistDoubleBooked as i32, sorted(vec![p1, p3])),
        (pb::ConflictKind::ArtistTravel as i32, sorted(vec![p2, p4])),
        (pb::ConflictKind::OutsideFestival as i32, vec![p5]),
    ];
    expected.sort();
    assert_eq!(got, expected);

    let refused =
        c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, &token)).await;
    let status = refused.expect_err("conflicts block publication");
    assert_eq!(festival_platform::error::reason(&status).as_deref(), Some("ERR_7004"));
    assert_eq!(festival_platform::error::violations(&status).len(), 4, "all conflicts are listed");
    let drafts = c
        .list_performances(authed(pb::ListPerformancesRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("list")
        .into_inner()
        .performances;
    assert_eq!(drafts.len(), 5, "every set is still there");
    assert!(drafts.iter().all(|p| p.status == pb::PerformanceStatus::Draft as i32), "nothing was published");
}

#[tokio::test]
async fn a_clean_schedule_publishes_and_the_public_sees_only_published_slots_and_no_contacts() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "clean-fest").await;
    perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-19T19:20:00+02:00", "2027-06-19T20:00:00+02:00").await;
    perform(&mut c, &token, &s, &s.a, &s.valley, "2027-06-19T19:15:00+02:00", "2027-06-19T20:00:00+02:00").await;
    c.transition_festival(authed(
        pb::TransitionFestivalRequest { festival_id: s.festival.clone(), status: pb::FestivalStatus::Published as i32 },
        &token,
    ))
    .await
    .expect("publish festival");
    let public = c
        .list_performances(pb::ListPerformancesRequest { festival_id: s.festival.clone() })
        .await
        .expect("list")
        .into_inner();
    assert!(public.performances.is_empty(), "draft slots are not public");

    let done = c
        .publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("publish");
    assert_eq!(done.into_inner().published, 3);
    let public = c
        .list_performances(pb::ListPerformancesRequest { festival_id: s.festival.clone() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(public.performances.len(), 3);
    let artists = c
        .list_artists(pb::ListArtistsRequest { festival_id: s.festival.clone() })
        .await
        .expect("artists")
        .into_inner()
        .artists;
    assert_eq!(artists.len(), 2, "the public sees the line-up");
    assert!(artists.iter().all(|a| a.contact.is_empty()), "contacts are for organizers");
    let own = c
        .list_artists(authed(pb::ListArtistsRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("artists")
        .into_inner()
        .artists;
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|a| a.contact.starts_with("booking@")));
}

#[tokio::test]
async fn bad_performances_are_refused_and_other_organizers_cannot_schedule() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (_, intruder) = env.user().await;
    let s = setup(&mut c, &token, "strict-fest").await;
    let other = setup(&mut c, &token, "other-fest").await;
    let request = |artist: &str, stage: &str, start: &str, end: &str| pb::CreatePerformanceRequest {
        festival_id: s.festival.clone(),
        artist_id: artist.into(),
        stage_id: stage.into(),
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    };
    let cases = vec![
        (request(&s.a, &s.main, "2027-06-19T19:00:00Z", "2027-06-19T18:00:00Z"), "ERR_1000"),
        (request(&s.a, &other.main, "2027-06-19T18:00:00Z", "2027-06-19T19:00:00Z"), "ERR_4000"),
        (request(&other.a, &s.main, "2027-06-19T18:00:00Z", "2027-06-19T19:00:00Z"), "ERR_4000"),
        (request("nope", &s.main, "2027-06-19T18:00:00Z", "2027-06-19T19:00:00Z"), "ERR_1004"),
        (
            pb::CreatePerformanceRequest {
                start_time: None,
                ..request(&s.a, &s.main, "2027-06-19T18:00:00Z", "2027-06-19T19:00:00Z")
            },
            "ERR_1001",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(c.create_performance(authed(req.clone(), &token)).await), expected, "{req:?}");
    }
    let ok = request(&s.a, &s.main, "2027-06-19T18:00:00Z", "2027-06-19T19:00:00Z");
    assert_eq!(
        code(c.create_performance(authed(ok, &intruder)).await),
        "ERR_4000",
        "a draft festival is invisible to others"
    );
    assert_eq!(
        code(c.check_schedule(authed(pb::CheckScheduleRequest { festival_id: s.festival.clone() }, &intruder)).await),
        "ERR_4000"
    );
    let artist =
        pb::CreateArtistRequest { festival_id: s.festival.clone(), name: "Intruder".into(), ..Default::default() };
    assert_eq!(code(c.create_artist(authed(artist, &intruder)).await), "ERR_4000");
    let count: i64 =
        sqlx::query_scalar("select count(*) from performances").fetch_one(&env.program.pool).await.expect("count");
    assert_eq!(count, 0, "nothing written");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn publish(c: &mut Client, token: &str, festival: &str) {
    c.transition_festival(authed(
        pb::TransitionFestivalRequest { festival_id: festival.into(), status: pb::FestivalStatus::Published as i32 },
        token,
    ))
    .await
    .expect("publish festival");
    c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: festival.into() }, token))
        .await
        .expect("publish schedule");
}

pub async fn published_setup(c: &mut Client, token: &str, slug: &str) -> (Setup, String, String) {
    let s = setup(c, token, slug).await;
    let p1 = perform(c, token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    let p2 = perform(c, token, &s, &s.b, &s.valley, "2027-06-19T18:30:00+02:00", "2027-06-19T19:30:00+02:00").await;
    publish(c, token, &s.festival).await;
    (s, p1, p2)
}

#[tokio::test]
async fn moving_or_cancelling_a_published_set_tells_its_fans_and_never_breaks_the_schedule() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (fan_id, fan) = env.user().await;
    let (s, p1, p2) = published_setup(&mut c, &token, "moving-fest").await;
    c.add_favourite(authed(
        pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: p1.clone() },
        &fan,
    ))
    .await
    .expect("star");

    // The public timetable is cached per festival; every change below must show at once.
    let timetable = |c: &mut Client| {
        let mut c = c.clone();
        let festival_id = s.festival.clone();
        async move {
            let entries = c
                .get_schedule(pb::GetScheduleRequest { festival_id, ..Default::default() })
                .await
                .expect("schedule")
                .into_inner()
                .entries;
            entries.into_iter().map(|e| (e.performance_id, e.start_time)).collect::<Vec<_>>()
        }
    };
    assert_eq!(timetable(&mut c).await.len(), 2);

    // Moving onto the other stage, overlapping p2 there: refused, nothing changes, no event.
    let onto_valley = pb::UpdatePerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        stage_id: s.valley.clone(),
        ..Default::default()
    };
    assert_eq!(code(c.update_performance(authed(onto_valley, &token)).await), "ERR_7004");
    let slot: (String, String) = sqlx::query_as("select stage_id::text, status from performances where id = $1::uuid")
        .bind(&p1)
        .fetch_one(&env.program.pool)
        .await
        .expect("row");
    assert_eq!(slot, (s.main.clone(), "PUBLISHED".to_owned()));

    // A clean move: one hour later on the same stage.
    let later = pb::UpdatePerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        start_time: Some(ts("2027-06-19T20:00:00+02:00")),
        end_time: Some(ts("2027-06-19T21:00:00+02:00")),
        ..Default::default()
    };
    let moved = c.update_performance(authed(later, &token)).await.expect("move").into_inner();
    assert_eq!(moved.start_time, Some(ts("2027-06-19T20:00:00+02:00")));
    let event = env.last_event::<pb::PerformanceChanged>().await;
    assert_eq!(event.performance_id, p1);
    assert_eq!(event.artist_name, "Alpha");
    assert_eq!(event.previous_start_time, Some(ts("2027-06-19T18:00:00+02:00")));
    assert_eq!(event.start_time, Some(ts("2027-06-19T20:00:00+02:00")));
    assert_eq!(event.status, pb::PerformanceStatus::Published as i32);
    assert_eq!(event.fan_user_ids, vec![fan_id.clone()]);
    assert!(timetable(&mut c).await.contains(&(p1.clone(), Some(ts("2027-06-19T20:00:00+02:00")))));

    // Cancelled: the fans hear why; a cancelled set cannot move or be starred again.
    let cancel = pb::CancelPerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        reason: "Flight cancelled".into(),
    };
    let cancelled = c.cancel_performance(authed(cancel.clone(), &token)).await.expect("cancel").into_inner();
    assert_eq!(cancelled.status, pb::PerformanceStatus::Cancelled as i32);
    let event = env.last_event::<pb::PerformanceChanged>().await;
    assert_eq!((event.status, event.reason.as_str()), (pb::PerformanceStatus::Cancelled as i32, "Flight cancelled"));
    assert_eq!(event.fan_user_ids, vec![fan_id]);
    c.cancel_performance(authed(cancel, &token)).await.expect("cancelling twice is harmless");
    assert_eq!(timetable(&mut c).await.into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![p2.clone()]);
    let again = pb::UpdatePerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        start_time: Some(ts("2027-06-19T22:00:00+02:00")),
        end_time: Some(ts("2027-06-19T23:00:00+02:00")),
        ..Default::default()
    };
    assert_eq!(code(c.update_performance(authed(again, &token)).await), "ERR_7011");
    let star = pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: p1.clone() };
    assert_eq!(code(c.add_favourite(authed(star, &fan)).await), "ERR_7011");
    let public = c
        .list_performances(pb::ListPerformancesRequest { festival_id: s.festival.clone() })
        .await
        .expect("list")
        .into_inner()
        .performances;
    assert_eq!(public.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), vec![p2]);
}

#[tokio::test]
async fn bad_moves_are_refused_and_other_organizers_cannot_move_or_cancel() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (_, intruder) = env.user().await;
    let (s, p1, _) = published_setup(&mut c, &token, "guarded-fest").await;
    let other = setup(&mut c, &intruder, "intruder-fest").await;
    let mv = |stage: &str, start: &str, end: &str| pb::UpdatePerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        stage_id: stage.into(),
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    };
    let cases = [
        (mv("", "2027-06-19T21:00:00+02:00", "2027-06-19T20:00:00+02:00"), "ERR_1000"),
        (mv(&other.main, "2027-06-19T20:00:00+02:00", "2027-06-19T21:00:00+02:00"), "ERR_4000"),
        (mv("not-a-uuid", "2027-06-19T20:00:00+02:00", "2027-06-19T21:00:00+02:00"), "ERR_1004"),
        (
            pb::UpdatePerformanceRequest {
                performance_id: uuid_like(),
                ..mv("", "2027-06-19T20:00:00+02:00", "2027-06-19T21:00:00+02:00")
            },
            "ERR_4000",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(c.update_performance(authed(req.clone(), &token)).await), expected, "{req:?}");
    }
    // The festival is public, so an organizer of another festival is told "not a member".
    let ok = mv("", "2027-06-19T20:00:00+02:00", "2027-06-19T21:00:00+02:00");
    assert_eq!(code(c.update_performance(authed(ok, &intruder)).await), "ERR_3002");
    let cancel = pb::CancelPerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        reason: String::new(),
    };
    assert_eq!(code(c.cancel_performance(authed(cancel.clone(), &intruder)).await), "ERR_3002");
    let long = pb::CancelPerformanceRequest { reason: "x".repeat(501), ..cancel };
    assert_eq!(code(c.cancel_performance(authed(long, &token)).await), "ERR_1002");
    let row: (String, String) = sqlx::query_as(
        "select status, to_char(start_time at time zone 'UTC', 'HH24:MI') from performances where id = $1::uuid",
    )
    .bind(&p1)
    .fetch_one(&env.program.pool)
    .await
    .expect("row");
    assert_eq!(row, ("PUBLISHED".to_owned(), "16:00".to_owned()), "unchanged");
}

fn uuid_like() -> String {
    "0191c8f0-0000-7000-8000-000000000000".into()
}

#[tokio::test]
async fn a_headliner_with_many_fans_is_announced_in_batches_of_fans() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (s, p1, _) = published_setup(&mut c, &token, "headliner-fest").await;
    sqlx::query(
        "insert into favourites (user_id, performance_id, festival_id)
         select gen_random_uuid(), $1::uuid, $2::uuid from generate_series(1, 12000)",
    )
    .bind(&p1)
    .bind(&s.festival)
    .execute(&env.program.pool)
    .await
    .expect("12,000 fans");
    let cancel = pb::CancelPerformanceRequest {
        festival_id: s.festival.clone(),
        performance_id: p1.clone(),
        reason: "Storm".into(),
    };
    c.cancel_performance(authed(cancel, &token)).await.expect("cancel");
    let last = env.last_event::<pb::PerformanceChanged>().await;
    assert_eq!((last.fan_batch, last.fan_batches), (2, 3));
    assert_eq!(last.fan_user_ids.len(), 2_000, "5,000 + 5,000 + 2,000");
    assert_eq!((last.performance_id.as_str(), last.reason.as_str()), (p1.as_str(), "Storm"));
}

#[tokio::test]
async fn stages_and_artists_can_be_edited_and_removed_without_breaking_the_published_schedule() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "editing-fest").await;
    let p1 = perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    let p3 = perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-19T19:25:00+02:00", "2027-06-19T20:00:00+02:00").await;
    publish(&mut c, &token, &s.festival).await;
    let stage = |changeover: i32, name: &str| pb::UpdateStageRequest {
        festival_id: s.festival.clone(),
        stage_id: s.main.clone(),
        name: name.into(),
        changeover_minutes: changeover,
        ..Default::default()
    };
    // Main's changeover is 20 minutes and the gap 25: 30 would break the published schedule.
    assert_eq!(code(c.update_stage(authed(stage(30, ""), &token)).await), "ERR_7004");
    let renamed = c.update_stage(authed(stage(25, "Main Stage"), &token)).await.expect("rename").into_inner();
    assert_eq!((renamed.name.as_str(), renamed.changeover_minutes, renamed.capacity), ("Main Stage", 25, 1000));
    assert_eq!(code(c.update_stage(authed(stage(0, "Valley"), &token)).await), "ERR_4001", "names are unique");
    // Shortening the festival past a published set is refused the same way.
    let shorter = pb::UpdateFestivalRequest {
        festival_id: s.festival.clone(),
        end_time: Some(ts("2027-06-19T19:30:00+02:00")),
        ..Default::default()
    };
    assert_eq!(code(c.update_festival(authed(shorter, &token)).await), "ERR_7004");

    let artist = |name: &str| pb::UpdateArtistRequest {
        festival_id: s.festival.clone(),
        artist_id: s.a.clone(),
        name: name.into(),
        genres: vec!["Doom".into()],
        ..Default::default()
    };
    let alpha = c.update_artist(authed(artist("Alpha Prime"), &token)).await.expect("update").into_inner();
    assert_eq!((alpha.name.as_str(), alpha.genres.clone()), ("Alpha Prime", vec!["doom".to_owned()]));
    assert!(alpha.contact.starts_with("booking@"), "unset fields are kept");
    assert_eq!(code(c.update_artist(authed(artist("Beta"), &token)).await), "ERR_4001");

    // In use: refused. Once its sets are cancelled, the artist goes (with them).
    let delete_artist = pb::DeleteArtistRequest { festival_id: s.festival.clone(), artist_id: s.a.clone() };
    assert_eq!(code(c.delete_artist(authed(delete_artist.clone(), &token)).await), "ERR_4004");
    let delete_main = pb::DeleteStageRequest { festival_id: s.festival.clone(), stage_id: s.main.clone() };
    assert_eq!(code(c.delete_stage(authed(delete_main, &token)).await), "ERR_4004");
    c.cancel_performance(authed(
        pb::CancelPerformanceRequest {
            festival_id: s.festival.clone(),
            performance_id: p1.clone(),
            reason: String::new(),
        },
        &token,
    ))
    .await
    .expect("cancel");
    c.delete_artist(authed(delete_artist, &token)).await.expect("delete artist");
    let left: Vec<String> = sqlx::query_scalar("select id::text from performances order by start_time")
        .fetch_all(&env.program.pool)
        .await
        .expect("rows");
    assert_eq!(left, vec![p3]);
    let spare = c
        .create_stage(authed(
            pb::CreateStageRequest { festival_id: s.festival.clone(), name: "Spare".into(), ..Default::default() },
            &token,
        ))
        .await
        .expect("stage")
        .into_inner();
    c.delete_stage(authed(
        pb::DeleteStageRequest { festival_id: s.festival.clone(), stage_id: spare.id.clone() },
        &token,
    ))
    .await
    .expect("an unused stage goes");
    let stages = c.list_stages(pb::ListStagesRequest { festival_id: s.festival.clone() }).await.expect("stages");
    assert_eq!(stages.into_inner().stages.len(), 2);
}

#[tokio::test]
async fn a_longer_travel_time_that_would_break_the_published_schedule_is_refused() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "travel-fest").await;
    // Alpha plays Main, then Valley 20 minutes later: fine with the default 15-minute walk.
    perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    perform(&mut c, &token, &s, &s.a, &s.valley, "2027-06-19T19:20:00+02:00", "2027-06-19T20:00:00+02:00").await;
    publish(&mut c, &token, &s.festival).await;
    let travel = |minutes: i32| pb::UpdateFestivalRequest {
        festival_id: s.festival.clone(),
        travel_minutes: minutes,
        ..Default::default()
    };
    let refused = c.update_festival(authed(travel(30), &token)).await.expect_err("30 minutes breaks Alpha's walk");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_7004"));
    let violations = festival_platform::error::violations(&refused);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].description.starts_with("CONFLICT_KIND_ARTIST_TRAVEL"), "{violations:?}");
    let kept = c
        .get_festival(authed(pb::GetFestivalRequest { id_or_slug: s.festival.clone() }, &token))
        .await
        .expect("festival")
        .into_inner();
    assert_eq!(kept.travel_minutes, 15, "the refused change wrote nothing");
    let fine = c.update_festival(authed(travel(20), &token)).await.expect("20 minutes still fits").into_inner();
    assert_eq!(fine.travel_minutes, 20);
}

#[tokio::test]
async fn an_artist_booked_only_in_draft_slots_is_not_announced_to_the_public() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "unannounced-fest").await;
    perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    publish(&mut c, &token, &s.festival).await;
    // Beta is booked after publication: a draft slot, not announced yet.
    perform(&mut c, &token, &s, &s.b, &s.valley, "2027-06-19T20:00:00+02:00", "2027-06-19T21:00:00+02:00").await;
    let names = |artists: Vec<pb::Artist>| artists.into_iter().map(|a| a.name).collect::<Vec<_>>();
    let public = c
        .list_artists(pb::ListArtistsRequest { festival_id: s.festival.clone() })
        .await
        .expect("public list")
        .into_inner()
        .artists;
    assert_eq!(names(public), ["Alpha"], "only artists with a published set");
    let (_, fan) = env.user().await;
    let signed_in = c
        .list_artists(authed(pb::ListArtistsRequest { festival_id: s.festival.clone() }, &fan))
        .await
        .expect("fan's list")
        .into_inner()
        .artists;
    assert_eq!(names(signed_in), ["Alpha"], "a signed-in fan sees no more");
    let booking = c
        .list_artists(authed(pb::ListArtistsRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("organizer's list")
        .into_inner()
        .artists;
    assert_eq!(names(booking), ["Alpha", "Beta"], "organizers see the whole booking list");
}

#[tokio::test]
async fn a_festival_holds_what_its_limits_allow_and_a_pile_of_conflicts_is_counted_not_listed() {
    let env = spawn_with(|c| {
        c.limits.stages = 2;
        c.limits.performances = 8;
        c.limits.conflicts_reported = 3;
    })
    .await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let s = setup(&mut c, &token, "limits-fest").await; // Main and Valley: the stage limit
    let third = pb::CreateStageRequest { festival_id: s.festival.clone(), name: "Third".into(), ..Default::default() };
    let refused = c.create_stage(authed(third, &token)).await.expect_err("a third stage");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_4005"));
    let stages: i64 =
        sqlx::query_scalar("select count(*) from stages").fetch_one(&env.program.pool).await.expect("count");
    assert_eq!(stages, 2, "nothing was written");

    // Eight sets on Main at the same hour: 8 * 7 / 2 stage overlaps, plus artist double bookings.
    for _ in 0..8 {
        perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await;
    }
    let ninth = pb::CreatePerformanceRequest {
        festival_id: s.festival.clone(),
        artist_id: s.b.clone(),
        stage_id: s.valley.clone(),
        start_time: Some(ts("2027-06-20T18:00:00+02:00")),
        end_time: Some(ts("2027-06-20T19:00:00+02:00")),
    };
    assert_eq!(code(c.create_performance(authed(ninth, &token)).await), "ERR_4005");
    let check = c
        .check_schedule(authed(pb::CheckScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(check.conflicts.len(), 3, "the configured number is listed");
    assert_eq!(check.total_conflicts, 28 + 28, "and all are counted: 28 stage overlaps, 28 double bookings");
    let refused = c
        .publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect_err("conflicts block publication");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_7004"));
    assert_eq!(festival_platform::error::violations(&refused).len(), 50, "a screenful of violations, not 56");
}
