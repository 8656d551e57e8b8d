//! Tenancy: an ORGANIZER of festival A (a real membership, in the token) is refused on
//! every mutating RPC of festival B (23 of them, reads of private data included) and on B's private reads, with ERR_3002 when B is
//! public and ERR_4000 when B is a draft (drafts do not leak), and B is left untouched.

use festival_proto::identity::v1 as idpb;
use festival_proto::program::v1 as pb;

use crate::helpers::*;
use crate::schedule::{perform, published_setup, setup};

/// The ids of one festival's things.
struct Target {
    festival: String,
    stage: String,
    artist: String,
    performance: String,
    shift: String,
}

async fn with_shift(c: &mut Client, token: &str, festival: &str) -> String {
    let shift = pb::CreateShiftRequest {
        festival_id: festival.into(),
        place_kind: pb::PlaceKind::Gate as i32,
        place: "North gate".into(),
        role: pb::ShiftRole::Security as i32,
        head_count: 2,
        start_time: Some(ts("2031-06-19T10:00:00Z")),
        end_time: Some(ts("2031-06-19T12:00:00Z")),
        notes: String::new(),
    };
    c.create_shift(authed(shift, token)).await.expect("shift").into_inner().id
}

/// Every call an outsider might try on `t`, with the code each one got.
async fn attempts(c: &mut Client, token: &str, t: &Target, someone: &str) -> Vec<(&'static str, String)> {
    let fid = || t.festival.clone();
    let at = |s: &str| Some(ts(s));
    let mut out = Vec::new();
    macro_rules! attempt {
        ($name:literal, $call:expr) => {
            out.push(($name, code($call.await)))
        };
    }
    attempt!(
        "UpdateFestival",
        c.update_festival(authed(
            pb::UpdateFestivalRequest { festival_id: fid(), name: "Hijacked".into(), ..Default::default() },
            token
        ))
    );
    attempt!(
        "TransitionFestival",
        c.transition_festival(authed(
            pb::TransitionFestivalRequest { festival_id: fid(), status: pb::FestivalStatus::Cancelled as i32 },
            token
        ))
    );
    attempt!("DeleteFestival", c.delete_festival(authed(pb::DeleteFestivalRequest { festival_id: fid() }, token)));
    attempt!(
        "CloneFestival",
        c.clone_festival(authed(
            pb::CloneFestivalRequest {
                festival_id: fid(),
                name: "Copy".into(),
                slug: format!("copy-{}", &t.festival[..8]),
                start_time: at("2030-06-18T12:00:00Z"),
                end_time: at("2030-06-20T12:00:00Z"),
            },
            token
        ))
    );
    attempt!(
        "CreateStage",
        c.create_stage(authed(
            pb::CreateStageRequest { festival_id: fid(), name: "Intruder".into(), ..Default::default() },
            token
        ))
    );
    attempt!(
        "UpdateStage",
        c.update_stage(authed(
            pb::UpdateStageRequest {
                festival_id: fid(),
                stage_id: t.stage.clone(),
                name: "Mine".into(),
                ..Default::default()
            },
            token
        ))
    );
    attempt!(
        "DeleteStage",
        c.delete_stage(authed(pb::DeleteStageRequest { festival_id: fid(), stage_id: t.stage.clone() }, token))
    );
    attempt!(
        "UpdateArtist",
        c.update_artist(authed(
            pb::UpdateArtistRequest {
                festival_id: fid(),
                artist_id: t.artist.clone(),
                name: "Mine".into(),
                ..Default::default()
            },
            token
        ))
    );
    attempt!(
        "DeleteArtist",
        c.delete_artist(authed(pb::DeleteArtistRequest { festival_id: fid(), artist_id: t.artist.clone() }, token))
    );
    attempt!(
        "DeleteShift",
        c.delete_shift(authed(pb::DeleteShiftRequest { festival_id: fid(), shift_id: t.shift.clone() }, token))
    );
    attempt!(
        "CreateArtist",
        c.create_artist(authed(
            pb::CreateArtistRequest { festival_id: fid(), name: "Intruder".into(), ..Default::default() },
            token
        ))
    );
    attempt!(
        "CreatePerformance",
        c.create_performance(authed(
            pb::CreatePerformanceRequest {
                festival_id: fid(),
                artist_id: t.artist.clone(),
                stage_id: t.stage.clone(),
                start_time: at("2027-06-20T12:00:00Z"),
                end_time: at("2027-06-20T13:00:00Z"),
            },
            token
        ))
    );
    attempt!(
        "UpdatePerformance",
        c.update_performance(authed(
            pb::UpdatePerformanceRequest {
                festival_id: fid(),
                performance_id: t.performance.clone(),
                start_time: at("2027-06-20T12:00:00Z"),
                end_time: at("2027-06-20T13:00:00Z"),
                ..Default::default()
            },
            token
        ))
    );
    attempt!(
        "CancelPerformance",
        c.cancel_performance(authed(
            pb::CancelPerformanceRequest {
                festival_id: fid(),
                performance_id: t.performance.clone(),
                reason: String::new()
            },
            token
        ))
    );
    attempt!("CheckSchedule", c.check_schedule(authed(pb::CheckScheduleRequest { festival_id: fid() }, token)));
    attempt!("PublishSchedule", c.publish_schedule(authed(pb::PublishScheduleRequest { festival_id: fid() }, token)));
    attempt!(
        "CreateShift",
        c.create_shift(authed(
            pb::CreateShiftRequest {
                festival_id: fid(),
                place_kind: pb::PlaceKind::Bar as i32,
                place: "Bar".into(),
                role: pb::ShiftRole::Staff as i32,
                head_count: 1,
                start_time: at("2031-06-19T10:00:00Z"),
                end_time: at("2031-06-19T11:00:00Z"),
                notes: String::new(),
            },
            token
        ))
    );
    attempt!(
        "AssignShift",
        c.assign_shift(authed(
            pb::AssignShiftRequest { festival_id: fid(), shift_id: t.shift.clone(), user_id: someone.into() },
            token
        ))
    );
    attempt!(
        "UnassignShift",
        c.unassign_shift(authed(
            pb::UnassignShiftRequest { festival_id: fid(), shift_id: t.shift.clone(), user_id: someone.into() },
            token
        ))
    );
    attempt!(
        "SignUpForShift",
        c.sign_up_for_shift(authed(pb::SignUpForShiftRequest { festival_id: fid(), shift_id: t.shift.clone() }, token))
    );
    attempt!(
        "ListShifts",
        c.list_shifts(authed(pb::ListShiftsRequest { festival_id: fid(), ..Default::default() }, token))
    );
    attempt!(
        "GetShiftCoverage",
        c.get_shift_coverage(authed(pb::GetShiftCoverageRequest { festival_id: fid() }, token))
    );
    attempt!("GetWorkedHours", c.get_worked_hours(authed(pb::GetWorkedHoursRequest { festival_id: fid() }, token)));
    out
}

/// A digest of everything stored for a festival.
async fn fingerprint(env: &Env, festival: &str) -> String {
    sqlx::query_scalar(
        "select md5(concat_ws('|',
            (select row(f.*)::text from festivals f where id = $1::uuid),
            (select string_agg(row(s.*)::text, ',' order by id) from stages s where festival_id = $1::uuid),
            (select string_agg(row(a.*)::text, ',' order by id) from artists a where festival_id = $1::uuid),
            (select string_agg(row(p.*)::text, ',' order by id) from performances p where festival_id = $1::uuid),
            (select string_agg(row(s.*)::text, ',' order by id) from shifts s where festival_id = $1::uuid),
            (select string_agg(row(a.*)::text, ',' order by shift_id, user_id) from shift_assignments a where festival_id = $1::uuid),
            (select count(*)::text from festivals where slug like 'copy-%')))",
    )
    .bind(festival)
    .fetch_one(&env.program.pool)
    .await
    .expect("fingerprint")
}

#[tokio::test]
async fn an_organizer_of_festival_a_can_neither_read_nor_change_anything_of_festival_b() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, alice_creator) = env.user().await;
    let (_, bob) = env.user().await;
    let a = c.create_festival(authed(festival("tenant-a"), &alice_creator)).await.expect("a").into_inner();
    // Alice is a real ORGANIZER of A: the membership is in her token.
    let (alice_id, alice) = env.member(&a.id, idpb::Role::Organizer).await;

    let (public, p1, _) = published_setup(&mut c, &bob, "tenant-b").await;
    let public = Target {
        shift: with_shift(&mut c, &bob, &public.festival).await,
        festival: public.festival,
        stage: public.main,
        artist: public.a,
        performance: p1,
    };
    let draft = setup(&mut c, &bob, "tenant-b-draft").await;
    let draft = Target {
        performance: perform(
            &mut c,
            &bob,
            &draft,
            &draft.a,
            &draft.main,
            "2027-06-19T18:00:00+02:00",
            "2027-06-19T19:00:00+02:00",
        )
        .await,
        shift: with_shift(&mut c, &bob, &draft.festival).await,
        festival: draft.festival,
        stage: draft.main,
        artist: draft.a,
    };

    for (target, expected) in [(&public, "ERR_3002"), (&draft, "ERR_4000")] {
        let before = fingerprint(&env, &target.festival).await;
        let results = attempts(&mut c, &alice, target, &alice_id).await;
        assert_eq!(results.len(), 23);
        for (rpc, got) in &results {
            assert_eq!(
                got,
                expected,
                "{rpc} on a {} festival of someone else",
                if expected == "ERR_3002" { "public" } else { "draft" }
            );
        }
        assert_eq!(fingerprint(&env, &target.festival).await, before, "nothing of B changed");
    }

    // Public reads of B show no private data; B's draft stays invisible.
    let artists = c
        .list_artists(authed(pb::ListArtistsRequest { festival_id: public.festival.clone() }, &alice))
        .await
        .expect("artists")
        .into_inner()
        .artists;
    assert!(!artists.is_empty(), "B's artists are listed publicly");
    assert!(artists.iter().all(|a| a.contact.is_empty()), "booking contacts are B's organizers' only");
    assert_eq!(
        code(c.get_festival(authed(pb::GetFestivalRequest { id_or_slug: draft.festival.clone() }, &alice)).await),
        "ERR_4000"
    );
    assert_eq!(
        code(
            c.get_schedule(authed(
                pb::GetScheduleRequest { festival_id: draft.festival.clone(), ..Default::default() },
                &alice
            ))
            .await
        ),
        "ERR_4000"
    );
    let listed = c
        .list_festivals(authed(pb::ListFestivalsRequest::default(), &alice))
        .await
        .expect("list")
        .into_inner()
        .festivals;
    assert!(!listed.is_empty(), "public festivals are listed");
    assert!(listed.iter().all(|f| f.id != draft.festival), "B's draft is not listed to A's organizer");

    // The same token still works on A, so the refusals above are about tenancy.
    c.create_stage(authed(
        pb::CreateStageRequest { festival_id: a.id.clone(), name: "A stage".into(), ..Default::default() },
        &alice,
    ))
    .await
    .expect("Alice organizes A");
}

/// A festival that requires a second factor of its staff (identity marks its memberships
/// in the token): an organiser whose session has none is refused with ERR_2012, here as
/// in every service (the platform's one check); with one, or at another festival, the
/// same role works.
#[tokio::test]
async fn a_festival_requiring_a_second_factor_refuses_its_staff_without_one() {
    use festival_testkit::tokens::Grant;
    let env = spawn().await;
    let mut c = env.client();
    let admin = env.admin().await;
    let strict = c.create_festival(authed(festival("strict-fest"), &admin)).await.expect("festival").into_inner().id;
    let relaxed = c.create_festival(authed(festival("relaxed-fest"), &admin)).await.expect("festival").into_inner().id;
    let (user, _) = env.member(&strict, idpb::Role::Organizer).await;
    let strict_id = uuid::Uuid::parse_str(&strict).expect("id");
    let relaxed_id = uuid::Uuid::parse_str(&relaxed).expect("id");
    let grant = Grant {
        user_id: uuid::Uuid::parse_str(&user).expect("id"),
        role: festival_platform::auth::Role::User,
        memberships: vec![
            (strict_id, festival_platform::auth::Role::Organizer),
            (relaxed_id, festival_platform::auth::Role::Organizer),
        ],
    };
    let stage = |festival: &str| pb::CreateStageRequest {
        festival_id: festival.into(),
        name: "Main".into(),
        capacity: 1000,
        position: 0,
        changeover_minutes: 15,
    };
    let password_only = env.issuer.token_with_mfa(&grant, false, &[strict_id]);
    assert_eq!(code(c.create_stage(authed(stage(&strict), &password_only)).await), "ERR_2012");
    let stages: i64 = sqlx::query_scalar("select count(*) from stages where festival_id = $1")
        .bind(strict_id)
        .fetch_one(&env.program.pool)
        .await
        .expect("count");
    assert_eq!(stages, 0, "nothing written");
    c.create_stage(authed(stage(&relaxed), &password_only)).await.expect("the other festival requires nothing");
    let with_second_factor = env.issuer.token_with_mfa(&grant, true, &[strict_id]);
    let created = c.create_stage(authed(stage(&strict), &with_second_factor)).await.expect("stage").into_inner();
    assert_eq!(created.name, "Main");
}
