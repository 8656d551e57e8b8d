//! What festival-goers see: the public timetable by festival day, stage, genre and
//! artist; the iCalendar export; favourites with their clash list and personal feed.

use festival_proto::program::v1 as pb;

use crate::helpers::*;
use crate::schedule::{Setup, perform, setup};

/// A published line-up over two festival days, one set running past midnight.
async fn line_up(c: &mut Client, token: &str, slug: &str) -> (Setup, Vec<String>) {
    let s = setup(c, token, slug).await;
    let gamma = c
        .create_artist(authed(
            pb::CreateArtistRequest {
                festival_id: s.festival.clone(),
                name: "Sigur Rós, live; the band".into(),
                genres: vec!["Post-Rock".into()],
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("artist")
        .into_inner()
        .id;
    let ids = vec![
        perform(c, token, &s, &s.a, &s.main, "2027-06-19T18:00:00+02:00", "2027-06-19T19:00:00+02:00").await,
        perform(c, token, &s, &s.b, &s.valley, "2027-06-19T18:30:00+02:00", "2027-06-19T19:30:00+02:00").await,
        // 01:00–02:30 on Sunday morning: still Saturday's festival day.
        perform(c, token, &s, &gamma, &s.main, "2027-06-20T01:00:00+02:00", "2027-06-20T02:30:00+02:00").await,
        perform(c, token, &s, &s.a, &s.valley, "2027-06-20T19:00:00+02:00", "2027-06-20T20:00:00+02:00").await,
    ];
    c.transition_festival(authed(
        pb::TransitionFestivalRequest { festival_id: s.festival.clone(), status: pb::FestivalStatus::Published as i32 },
        token,
    ))
    .await
    .expect("publish festival");
    c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, token))
        .await
        .expect("publish schedule");
    (s, ids)
}

fn schedule(s: &Setup) -> pb::GetScheduleRequest {
    pb::GetScheduleRequest { festival_id: s.festival.clone(), ..Default::default() }
}

#[tokio::test]
async fn the_public_timetable_filters_by_festival_day_stage_genre_and_artist_with_grid_positions() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (s, ids) = line_up(&mut c, &token, "timetable-fest").await;
    // A draft set added after publishing is not public.
    perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-20T18:00:00+02:00", "2027-06-20T18:30:00+02:00").await;

    let all = c.get_schedule(schedule(&s)).await.expect("schedule").into_inner();
    assert_eq!(all.time_zone, "Europe/Paris");
    let days: Vec<(String, i32)> = all.days.iter().map(|d| (d.date.clone(), d.performance_count)).collect();
    assert_eq!(days, vec![(day("2027-06-19"), 3), (day("2027-06-20"), 1)]);
    assert_eq!(all.entries.iter().map(|e| e.performance_id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(all.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Main", "Valley"]);
    let late = &all.entries[2];
    assert_eq!((late.day.clone(), late.start_minute, late.end_minute), (day("2027-06-19"), 25 * 60, 26 * 60 + 30));
    assert_eq!((late.stage_name.as_str(), late.column), ("Main", 0));
    assert_eq!(all.entries[1].column, 1);

    let saturday =
        c.get_schedule(pb::GetScheduleRequest { day: day("2027-06-19"), ..schedule(&s) }).await.expect("day");
    assert_eq!(saturday.into_inner().entries.len(), 3, "the 01:00 set belongs to Saturday");
    let valley = c
        .get_schedule(pb::GetScheduleRequest { stage_ids: vec![s.valley.clone()], ..schedule(&s) })
        .await
        .expect("stage")
        .into_inner();
    assert_eq!(
        valley.entries.iter().map(|e| e.performance_id.clone()).collect::<Vec<_>>(),
        [ids[1].clone(), ids[3].clone()]
    );
    let post_rock =
        c.get_schedule(pb::GetScheduleRequest { genre: "post-rock".into(), ..schedule(&s) }).await.expect("genre");
    assert_eq!(
        post_rock.into_inner().entries.iter().map(|e| e.performance_id.clone()).collect::<Vec<_>>(),
        [ids[2].clone()]
    );
    let alpha =
        c.get_schedule(pb::GetScheduleRequest { artist_query: "ALPH".into(), ..schedule(&s) }).await.expect("search");
    assert_eq!(alpha.into_inner().entries.len(), 2);

    // Paging walks the whole schedule once, in order.
    let mut seen = Vec::new();
    let mut token_ = String::new();
    loop {
        let page = c
            .get_schedule(pb::GetScheduleRequest { page_size: 3, page_token: token_.clone(), ..schedule(&s) })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.entries.into_iter().map(|e| e.performance_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token_ = page.next_page_token;
    }
    assert_eq!(seen, ids);

    for (bad, expected) in [
        (pb::GetScheduleRequest { day: "19/06/2027".into(), ..schedule(&s) }, "ERR_1000"),
        (pb::GetScheduleRequest { stage_ids: vec!["main".into()], ..schedule(&s) }, "ERR_1004"),
        (pb::GetScheduleRequest { page_token: "bogus".into(), ..schedule(&s) }, "ERR_1005"),
        (pb::GetScheduleRequest { artist_query: "x".repeat(201), ..schedule(&s) }, "ERR_1002"),
    ] {
        assert_eq!(code(c.get_schedule(bad.clone()).await), expected, "{bad:?}");
    }
}

#[tokio::test]
async fn the_line_up_exports_as_icalendar_that_a_real_parser_reads_back() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (s, ids) = line_up(&mut c, &token, "ical-fest").await;
    let body = c
        .export_calendar(pb::ExportCalendarRequest { festival_id: s.festival.clone() })
        .await
        .expect("export")
        .into_inner();
    assert_eq!(body.content_type, "text/calendar; charset=utf-8");
    let events = parse_ics(&body.data);
    assert_eq!(events.len(), 4);
    let uids: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    assert_eq!(uids, ids.iter().map(|id| format!("{id}@ical-fest.festival")).collect::<Vec<_>>());
    let late = &events[2];
    assert_eq!(late.1, "Sigur Rós, live; the band", "escaped text reads back unchanged");
    assert_eq!(
        late.2,
        format!("{}T230000Z", day("2027-06-19").replace('-', "")),
        "01:00 in Paris is 23:00 UTC the day before"
    );
    assert_eq!(late.3, "CONFIRMED");

    // Drafts are not exported, and draft festivals are invisible.
    let (_, other) = env.user().await;
    let draft = setup(&mut c, &other, "ical-draft").await;
    assert_eq!(
        code(c.export_calendar(pb::ExportCalendarRequest { festival_id: draft.festival.clone() }).await),
        "ERR_4000"
    );
    assert_eq!(code(c.get_schedule(schedule(&draft)).await), "ERR_4000");
}

#[tokio::test]
async fn favourites_list_their_clashes_and_feed_a_personal_calendar_behind_a_secret_url() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (fan_id, fan) = env.user().await;
    let (_, other_fan) = env.user().await;
    let (s, ids) = line_up(&mut c, &token, "fan-fest").await;
    // ids[0] Main 18:00–19:00 and ids[1] Valley 18:30–19:30 overlap; a Valley set at 19:10
    // would be too close to walk from Main (15 minutes' travel); ids[3] is the next day.
    let close =
        perform(&mut c, &token, &s, &s.b, &s.valley, "2027-06-19T19:40:00+02:00", "2027-06-19T20:10:00+02:00").await;
    c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("publish the new set");
    let star = |id: &str| pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: id.into() };
    for id in [&ids[0], &ids[1], &ids[3], &close, &ids[0]] {
        c.add_favourite(authed(star(id), &fan)).await.expect("star");
    }
    // Main 18:00–19:00 → Valley 19:40 is fine, but Valley 18:30–19:30 → Valley 19:40 is the
    // same stage (no walk). So: one overlap only. Now star the late Main set too.
    c.add_favourite(authed(star(&ids[2]), &fan)).await.expect("star late");
    let mine = c
        .list_favourites(authed(pb::ListFavouritesRequest { festival_id: s.festival.clone() }, &fan))
        .await
        .expect("favourites")
        .into_inner();
    assert_eq!(mine.favourites.len(), 5, "starring twice changes nothing");
    let clashes: Vec<(i32, Vec<String>)> = mine.clashes.iter().map(|c| (c.kind, c.performance_ids.clone())).collect();
    let mut pair = vec![ids[0].clone(), ids[1].clone()];
    pair.sort();
    assert_eq!(clashes, vec![(pb::ClashKind::Overlap as i32, pair)]);

    // Too close: a Main set at 20:15 after Valley until 20:10.
    let tight =
        perform(&mut c, &token, &s, &s.a, &s.main, "2027-06-19T20:15:00+02:00", "2027-06-19T20:45:00+02:00").await;
    c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("publish");
    c.add_favourite(authed(star(&tight), &fan)).await.expect("star tight");
    let mine = c
        .list_favourites(authed(pb::ListFavouritesRequest { festival_id: s.festival.clone() }, &fan))
        .await
        .expect("favourites")
        .into_inner();
    let mut tight_pair = vec![close.clone(), tight.clone()];
    tight_pair.sort();
    assert!(
        mine.clashes.iter().any(|c| c.kind == pb::ClashKind::TooClose as i32 && c.performance_ids == tight_pair),
        "{:?}",
        mine.clashes
    );
    assert_eq!(mine.clashes.len(), 2);
    c.remove_favourite(authed(
        pb::RemoveFavouriteRequest { festival_id: s.festival.clone(), performance_id: tight.clone() },
        &fan,
    ))
    .await
    .expect("unstar");

    // The personal feed: its secret is shown once, stored as a digest, and works until rotated.
    let feed = |rotate| pb::GetFavouritesFeedRequest { festival_id: s.festival.clone(), rotate };
    let first = c.get_favourites_feed(authed(feed(false), &fan)).await.expect("feed").into_inner();
    assert!(first.token.len() >= 43, "256 random bits");
    assert_eq!(first.path, format!("/v1/calendars/{}", first.token));
    let again = c.get_favourites_feed(authed(feed(false), &fan)).await.expect("feed").into_inner();
    assert_eq!((again.token.as_str(), again.path.as_str()), ("", ""), "not shown again");
    assert_eq!(again.issue_time, first.issue_time, "the same secret is still the one");
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select token_hash from calendar_feeds").fetch_all(&env.program.pool).await.expect("feeds");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32, "a SHA-256 digest, not the secret");
    let theirs = c.get_favourites_feed(authed(feed(false), &other_fan)).await.expect("feed").into_inner();
    assert_ne!(theirs.token, first.token);

    // Cancelling a starred set keeps it in the feed, marked cancelled, so calendars drop it.
    c.cancel_performance(authed(
        pb::CancelPerformanceRequest {
            festival_id: s.festival.clone(),
            performance_id: ids[3].clone(),
            reason: String::new(),
        },
        &token,
    ))
    .await
    .expect("cancel");
    let calendar = c
        .get_personal_calendar(pb::GetPersonalCalendarRequest { token: first.token.clone() })
        .await
        .expect("calendar")
        .into_inner();
    let events = parse_ics(&calendar.data);
    assert_eq!(events.len(), 5);
    let status_of = |id: &str| events.iter().find(|e| e.0.starts_with(id)).map(|e| e.3.clone()).unwrap_or_default();
    assert_eq!(status_of(&ids[3]), "CANCELLED");
    assert_eq!(status_of(&ids[0]), "CONFIRMED");
    let listed = c
        .list_favourites(authed(pb::ListFavouritesRequest { festival_id: s.festival.clone() }, &fan))
        .await
        .expect("favourites")
        .into_inner();
    assert_eq!(listed.favourites.len(), 4, "a cancelled set leaves the list");

    let rotated = c.get_favourites_feed(authed(feed(true), &fan)).await.expect("rotate").into_inner();
    assert_ne!(rotated.token, first.token);
    assert_eq!(code(c.get_personal_calendar(pb::GetPersonalCalendarRequest { token: first.token }).await), "ERR_4000");
    c.get_personal_calendar(pb::GetPersonalCalendarRequest { token: rotated.token }).await.expect("new secret works");

    // Only published sets can be starred; anonymous callers cannot star.
    let draft =
        perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-20T21:00:00+02:00", "2027-06-20T22:00:00+02:00").await;
    assert_eq!(code(c.add_favourite(authed(star(&draft), &fan)).await), "ERR_4000");
    assert_eq!(code(c.add_favourite(star(&ids[0])).await), "ERR_2000");
    let rows: i64 = sqlx::query_scalar("select count(*) from favourites where user_id = $1::uuid")
        .bind(&fan_id)
        .fetch_one(&env.program.pool)
        .await
        .expect("count");
    assert_eq!(rows, 5);
}

#[tokio::test]
async fn a_deleted_account_loses_its_favourites_feed_and_future_shifts_here_too() {
    use festival_proto::identity::v1 as idpb;

    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (s, ids) = line_up(&mut c, &token, "forget-fest").await;
    let (user_id, member) = env.member(&s.festival, idpb::Role::Staff).await;
    c.add_favourite(authed(
        pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: ids[0].clone() },
        &member,
    ))
    .await
    .expect("star");
    let feed = c
        .get_favourites_feed(authed(
            pb::GetFavouritesFeedRequest { festival_id: s.festival.clone(), rotate: false },
            &member,
        ))
        .await
        .expect("feed")
        .into_inner();
    let bar_shift = |start: &str, end: &str| pb::CreateShiftRequest {
        festival_id: s.festival.clone(),
        place_kind: pb::PlaceKind::Bar as i32,
        place: "Bar".into(),
        role: pb::ShiftRole::Staff as i32,
        head_count: 1,
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
        notes: String::new(),
    };
    let shift = bar_shift("2031-06-19T10:00:00Z", "2031-06-19T12:00:00Z");
    let shift = c.create_shift(authed(shift, &token)).await.expect("shift").into_inner();
    c.sign_up_for_shift(authed(
        pb::SignUpForShiftRequest { festival_id: s.festival.clone(), shift_id: shift.id },
        &member,
    ))
    .await
    .expect("sign up");

    // A shift the member already worked: the record of it must outlive the account.
    let worked = c
        .create_shift(authed(bar_shift("2024-06-19T10:00:00Z", "2024-06-19T13:00:00Z"), &token))
        .await
        .expect("past shift")
        .into_inner();
    c.assign_shift(authed(
        pb::AssignShiftRequest { festival_id: s.festival.clone(), shift_id: worked.id, user_id: user_id.clone() },
        &token,
    ))
    .await
    .expect("organizers record who worked a past shift");

    // What identity publishes when the account is deleted.
    festival_testkit::publish_event(&env.program.naming(), &idpb::UserDeleted { user_id: user_id.clone() }).await;
    let pool = env.program.pool.clone();
    let uid = user_id.clone();
    let forgotten = festival_testkit::eventually(std::time::Duration::from_secs(15), || {
        let (pool, uid) = (pool.clone(), uid.clone());
        async move {
            let left: i64 = sqlx::query_scalar(
                "select (select count(*) from favourites where user_id = $1::uuid)
                      + (select count(*) from calendar_feeds where user_id = $1::uuid)
                      + (select count(*) from festival_members where user_id = $1::uuid and active)
                      + (select count(*) from shift_assignments a join shifts s on s.id = a.shift_id
                         where a.user_id = $1::uuid and s.start_time > now())",
            )
            .bind(uid)
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
            left == 0
        }
    })
    .await;
    assert!(forgotten, "program forgot the deleted account");
    assert_eq!(code(c.get_personal_calendar(pb::GetPersonalCalendarRequest { token: feed.token }).await), "ERR_4000");
    let hours = c
        .get_worked_hours(authed(pb::GetWorkedHoursRequest { festival_id: s.festival.clone() }, &token))
        .await
        .expect("hours")
        .into_inner()
        .people;
    assert_eq!(hours.len(), 1, "the past shift is still on record: {hours:?}");
    assert_eq!(
        (hours[0].user_id.as_str(), hours[0].shift_count, hours[0].worked_minutes, hours[0].scheduled_minutes),
        (user_id.as_str(), 1, 180, 0),
        "under the pseudonymous id, worked and nothing scheduled"
    );
}

#[tokio::test]
async fn timetables_and_calendars_carry_validators_that_change_with_the_line_up() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (_, fan) = env.user().await;
    let (s, ids) = line_up(&mut c, &token, "etag-fest").await;
    let header = |m: &tonic::metadata::MetadataMap, name: &str| {
        m.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let timetable = |c: &mut Client| {
        let mut c = c.clone();
        let request = schedule(&s);
        async move { c.get_schedule(request).await.expect("schedule").metadata().clone() }
    };
    let first = timetable(&mut c).await;
    assert_eq!(header(&first, "cache-control"), "public, max-age=30");
    assert!(header(&first, "etag").starts_with("W/\""));
    assert_eq!(header(&timetable(&mut c).await, "etag"), header(&first, "etag"), "unchanged, same validator");
    perform(&mut c, &token, &s, &s.b, &s.main, "2027-06-20T21:00:00+02:00", "2027-06-20T22:00:00+02:00").await;
    assert_ne!(header(&timetable(&mut c).await, "etag"), header(&first, "etag"), "any line-up change shows");

    let export = c.export_calendar(pb::ExportCalendarRequest { festival_id: s.festival.clone() }).await.expect("ics");
    assert_eq!(header(export.metadata(), "content-disposition"), "inline; filename=\"etag-fest.ics\"");

    c.add_favourite(authed(
        pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: ids[0].clone() },
        &fan,
    ))
    .await
    .expect("star");
    let feed = c
        .get_favourites_feed(authed(
            pb::GetFavouritesFeedRequest { festival_id: s.festival.clone(), rotate: false },
            &fan,
        ))
        .await
        .expect("feed")
        .into_inner();
    let personal = |c: &mut Client| {
        let mut c = c.clone();
        let token = feed.token.clone();
        async move {
            c.get_personal_calendar(pb::GetPersonalCalendarRequest { token }).await.expect("feed").metadata().clone()
        }
    };
    let before = personal(&mut c).await;
    assert_eq!(header(&before, "cache-control"), "private, no-cache");
    assert_eq!(header(&personal(&mut c).await, "etag"), header(&before, "etag"));
    c.add_favourite(authed(
        pb::AddFavouriteRequest { festival_id: s.festival.clone(), performance_id: ids[3].clone() },
        &fan,
    ))
    .await
    .expect("star another");
    assert_ne!(header(&personal(&mut c).await, "etag"), header(&before, "etag"));
}
