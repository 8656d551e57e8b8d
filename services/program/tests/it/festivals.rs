use festival_proto::program::v1 as pb;

use crate::helpers::*;

fn transition(festival_id: &str, status: pb::FestivalStatus) -> pb::TransitionFestivalRequest {
    pb::TransitionFestivalRequest { festival_id: festival_id.into(), status: status as i32 }
}

fn stage(festival_id: &str, name: &str) -> pb::CreateStageRequest {
    pb::CreateStageRequest {
        festival_id: festival_id.into(),
        name: name.into(),
        capacity: 20_000,
        position: 0,
        changeover_minutes: 20,
    }
}

#[tokio::test]
async fn a_festival_goes_from_draft_to_completed_and_refused_transitions_change_nothing() {
    let env = spawn().await;
    let mut c = env.client();
    let (user_id, token) = env.user().await;
    let f = c.create_festival(authed(festival("hellfest-2027"), &token)).await.expect("create").into_inner();
    assert_eq!((f.status, f.created_by.as_str()), (pb::FestivalStatus::Draft as i32, user_id.as_str()));

    // Publishing needs a stage first; the refusal names what is missing.
    let incomplete = c.transition_festival(authed(transition(&f.id, pb::FestivalStatus::Published), &token)).await;
    let status = incomplete.expect_err("incomplete");
    assert_eq!(festival_platform::error::reason(&status).as_deref(), Some("ERR_7003"));
    assert_eq!(festival_platform::error::violations(&status)[0].field, "stages");

    c.create_stage(authed(stage(&f.id, "Mainstage 1"), &token)).await.expect("stage");
    assert_eq!(
        code(c.create_stage(authed(stage(&f.id, "Mainstage 1"), &token)).await),
        "ERR_4001",
        "stage names are unique"
    );
    assert_eq!(
        code(c.transition_festival(authed(transition(&f.id, pb::FestivalStatus::Ongoing), &token)).await),
        "ERR_7002"
    );

    for next in [pb::FestivalStatus::Published, pb::FestivalStatus::Ongoing, pb::FestivalStatus::Completed] {
        let done =
            c.transition_festival(authed(transition(&f.id, next), &token)).await.expect("transition").into_inner();
        assert_eq!(done.status, next as i32);
    }
    for refused in [pb::FestivalStatus::Cancelled, pb::FestivalStatus::Draft, pb::FestivalStatus::Published] {
        assert_eq!(code(c.transition_festival(authed(transition(&f.id, refused), &token)).await), "ERR_7002");
    }
    let still =
        c.get_festival(pb::GetFestivalRequest { id_or_slug: "hellfest-2027".into() }).await.expect("get").into_inner();
    assert_eq!(still.status, pb::FestivalStatus::Completed as i32, "refused transitions changed nothing");
    assert_eq!(
        code(c.delete_festival(authed(pb::DeleteFestivalRequest { festival_id: f.id.clone() }, &token)).await),
        "ERR_7002"
    );
    env.program.assert_outbox_drained().await;
}

#[tokio::test]
async fn drafts_are_invisible_to_the_public_and_to_other_organizers() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let draft = c.create_festival(authed(festival("secret-draft"), &alice)).await.expect("create").into_inner();
    let public = c.create_festival(authed(festival("open-air"), &alice)).await.expect("create").into_inner();
    c.create_stage(authed(stage(&public.id, "Main"), &alice)).await.expect("stage");
    c.transition_festival(authed(transition(&public.id, pb::FestivalStatus::Published), &alice))
        .await
        .expect("publish");

    assert_eq!(code(c.get_festival(pb::GetFestivalRequest { id_or_slug: draft.id.clone() }).await), "ERR_4000");
    assert_eq!(
        code(c.get_festival(authed(pb::GetFestivalRequest { id_or_slug: "secret-draft".into() }, &bob)).await),
        "ERR_4000"
    );
    c.get_festival(authed(pb::GetFestivalRequest { id_or_slug: "secret-draft".into() }, &alice))
        .await
        .expect("its organizer sees it");

    let slugs = |r: pb::ListFestivalsResponse| r.festivals.into_iter().map(|f| f.slug).collect::<Vec<_>>();
    assert_eq!(
        slugs(c.list_festivals(pb::ListFestivalsRequest::default()).await.expect("list").into_inner()),
        vec!["open-air"]
    );
    assert_eq!(
        slugs(c.list_festivals(authed(pb::ListFestivalsRequest::default(), &bob)).await.expect("list").into_inner()),
        vec!["open-air"]
    );
    let mut own =
        slugs(c.list_festivals(authed(pb::ListFestivalsRequest::default(), &alice)).await.expect("list").into_inner());
    own.sort();
    assert_eq!(own, vec!["open-air", "secret-draft"]);
    let admin = env.admin().await;
    assert_eq!(
        c.list_festivals(authed(pb::ListFestivalsRequest { page_size: 1, ..Default::default() }, &admin))
            .await
            .expect("page")
            .into_inner()
            .festivals
            .len(),
        1
    );
    assert_eq!(code(c.list_stages(pb::ListStagesRequest { festival_id: draft.id.clone() }).await), "ERR_4000");
}

#[tokio::test]
async fn an_organizer_of_one_festival_cannot_change_another() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let a = c.create_festival(authed(festival("alice-fest"), &alice)).await.expect("a").into_inner();
    let b = c.create_festival(authed(festival("bob-fest"), &bob)).await.expect("b").into_inner();
    c.create_stage(authed(stage(&b.id, "Bob stage"), &bob)).await.expect("stage");
    c.transition_festival(authed(transition(&b.id, pb::FestivalStatus::Published), &bob)).await.expect("publish");

    // B is public: Alice is refused as a non-member. A draft of Bob's would be "not found".
    let update = pb::UpdateFestivalRequest { festival_id: b.id.clone(), name: "Hijacked".into(), ..Default::default() };
    assert_eq!(code(c.update_festival(authed(update, &alice)).await), "ERR_3002");
    assert_eq!(
        code(c.transition_festival(authed(transition(&b.id, pb::FestivalStatus::Cancelled), &alice)).await),
        "ERR_3002"
    );
    assert_eq!(
        code(c.delete_festival(authed(pb::DeleteFestivalRequest { festival_id: b.id.clone() }, &alice)).await),
        "ERR_3002"
    );
    assert_eq!(code(c.create_stage(authed(stage(&b.id, "Intruder"), &alice)).await), "ERR_3002");
    let bob_draft = c.create_festival(authed(festival("bob-draft"), &bob)).await.expect("draft").into_inner();
    assert_eq!(code(c.create_stage(authed(stage(&bob_draft.id, "Intruder"), &alice)).await), "ERR_4000");

    let b_now = c.get_festival(pb::GetFestivalRequest { id_or_slug: b.id.clone() }).await.expect("get").into_inner();
    assert_eq!((b_now.name.as_str(), b_now.status), ("Festival bob-fest", pb::FestivalStatus::Published as i32));
    let stages =
        c.list_stages(pb::ListStagesRequest { festival_id: b.id.clone() }).await.expect("stages").into_inner().stages;
    assert_eq!(stages.len(), 1, "no intruder stage");
    // Alice still manages her own.
    c.update_festival(authed(
        pb::UpdateFestivalRequest { festival_id: a.id, venue: "Clisson".into(), ..Default::default() },
        &alice,
    ))
    .await
    .expect("own festival");
    // Anonymous callers cannot write at all.
    assert_eq!(code(c.create_festival(festival("anon")).await), "ERR_2000");
}

#[tokio::test]
async fn bad_festivals_get_catalogued_codes_and_nothing_is_written() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    c.create_festival(authed(festival("taken"), &token)).await.expect("first");
    let cases: Vec<(pb::CreateFestivalRequest, &str)> = vec![
        (pb::CreateFestivalRequest::default(), "ERR_1001"),
        (festival("taken"), "ERR_7005"),
        (pb::CreateFestivalRequest { slug: "Not A Slug".into(), ..festival("x") }, "ERR_1000"),
        (pb::CreateFestivalRequest { time_zone: "Mars/Olympus".into(), ..festival("mars-2027") }, "ERR_7006"),
        (pb::CreateFestivalRequest { currency: "euro".into(), ..festival("eur-2027") }, "ERR_1002"),
        (pb::CreateFestivalRequest { currency: "eu1".into(), ..festival("eur-2027") }, "ERR_1000"),
        (pb::CreateFestivalRequest { name: "n".repeat(201), ..festival("long-2027") }, "ERR_1002"),
        (pb::CreateFestivalRequest { capacity: -1, ..festival("neg-2027") }, "ERR_1000"),
        (
            pb::CreateFestivalRequest {
                start_time: Some(ts("2027-06-21T00:00:00Z")),
                end_time: Some(ts("2027-06-18T00:00:00Z")),
                ..festival("backwards-2027")
            },
            "ERR_1000",
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(code(c.create_festival(authed(request.clone(), &token)).await), expected, "{request:?}");
    }
    assert_eq!(env.festivals().await, 1, "nothing written by refused requests");
    let bad_transition = pb::TransitionFestivalRequest { festival_id: "nope".into(), status: 99 };
    assert_eq!(code(c.transition_festival(authed(bad_transition, &token)).await), "ERR_1004");
}

#[tokio::test]
async fn languages_descriptions_and_images_are_validated_and_kept() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let descriptions = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = pb::CreateFestivalRequest {
        languages: vec!["fr".into(), "en".into()],
        descriptions: descriptions(&[("fr", "Trois jours de musique"), ("en", "Three days of music")]),
        image_urls: vec!["https://cdn.example.org/poster.jpg".into()],
        ..festival("polyglot-fest")
    };
    let created = c.create_festival(authed(request.clone(), &token)).await.expect("create").into_inner();
    assert_eq!(created.languages, ["fr", "en"]);
    assert_eq!(created.descriptions.get("en").map(String::as_str), Some("Three days of music"));
    assert_eq!(created.image_urls, ["https://cdn.example.org/poster.jpg"]);

    let cases = [
        (
            pb::CreateFestivalRequest {
                slug: "bad-case-1".into(),
                languages: vec!["French".into()],
                ..request.clone()
            },
            "ERR_1000",
        ),
        (
            pb::CreateFestivalRequest {
                slug: "bad-case-2".into(),
                descriptions: descriptions(&[("de", "Drei Tage")]),
                ..request.clone()
            },
            "ERR_1000",
        ),
        (
            pb::CreateFestivalRequest {
                slug: "bad-case-3".into(),
                image_urls: vec!["http://insecure.example/p.jpg".into()],
                ..request.clone()
            },
            "ERR_1000",
        ),
        (
            pb::CreateFestivalRequest {
                slug: "bad-case-4".into(),
                descriptions: descriptions(&[("en", &"x".repeat(10_001))]),
                ..request.clone()
            },
            "ERR_1002",
        ),
        (
            pb::CreateFestivalRequest {
                slug: "bad-case-5".into(),
                languages: vec!["en".into(), "en".into()],
                ..request.clone()
            },
            "ERR_1000",
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(code(c.create_festival(authed(req.clone(), &token)).await), expected, "{:?}", req.slug);
    }
    assert_eq!(env.festivals().await, 1);

    // An update adds German and its description; a description in an unknown language is refused.
    let update = pb::UpdateFestivalRequest {
        festival_id: created.id.clone(),
        languages: vec!["fr".into(), "en".into(), "de".into()],
        descriptions: descriptions(&[("de", "Drei Tage Musik")]),
        ..Default::default()
    };
    let updated = c.update_festival(authed(update, &token)).await.expect("update").into_inner();
    assert_eq!(updated.descriptions.get("de").map(String::as_str), Some("Drei Tage Musik"));
    let unknown = pb::UpdateFestivalRequest {
        festival_id: created.id.clone(),
        descriptions: descriptions(&[("it", "Tre giorni")]),
        ..Default::default()
    };
    assert_eq!(code(c.update_festival(authed(unknown, &token)).await), "ERR_1000");
    let artist = pb::CreateArtistRequest {
        festival_id: created.id.clone(),
        name: "Gamma".into(),
        bios: descriptions(&[("fr", "Groupe de Lyon")]),
        links: vec!["https://gamma.example".into()],
        ..Default::default()
    };
    let gamma = c.create_artist(authed(artist.clone(), &token)).await.expect("artist").into_inner();
    assert_eq!((gamma.bios.len(), gamma.links.len()), (1, 1));
    let bad = pb::CreateArtistRequest { name: "Delta".into(), bios: descriptions(&[("pt", "Banda")]), ..artist };
    assert_eq!(code(c.create_artist(authed(bad, &token)).await), "ERR_1000");
}

#[tokio::test]
async fn cloning_last_years_edition_copies_the_structure_as_a_new_draft() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let (_, intruder) = env.user().await;
    let (s, p1, _) = crate::schedule::published_setup(&mut c, &token, "edition-2027").await;
    c.create_shift(authed(
        pb::CreateShiftRequest {
            festival_id: s.festival.clone(),
            place_kind: pb::PlaceKind::Stage as i32,
            place: s.main.clone(),
            role: pb::ShiftRole::Security as i32,
            head_count: 4,
            start_time: Some(ts("2027-06-19T17:00:00+02:00")),
            end_time: Some(ts("2027-06-19T23:00:00+02:00")),
            notes: "Pit".into(),
        },
        &token,
    ))
    .await
    .expect("shift");
    let request = pb::CloneFestivalRequest {
        festival_id: s.festival.clone(),
        name: "Edition 2028".into(),
        slug: "edition-2028".into(),
        start_time: Some(ts("2028-06-16T14:00:00+02:00")),
        end_time: Some(ts("2028-06-19T04:00:00+02:00")),
    };
    // Another organizer cannot clone it (the festival is public, so: not a member).
    assert_eq!(code(c.clone_festival(authed(request.clone(), &intruder)).await), "ERR_3002");
    assert_eq!(
        code(
            c.clone_festival(authed(
                pb::CloneFestivalRequest { slug: "edition-2027".into(), ..request.clone() },
                &token
            ))
            .await
        ),
        "ERR_7005"
    );
    // Extreme dates would move every set by an offset chrono cannot add: refused, no panic.
    let far = |seconds: i64| Some(prost_types::Timestamp { seconds, nanos: 0 });
    for (start, end) in [(far(i64::MIN / 2), far(0)), (far(0), far(i64::MAX / 2)), (far(-62_135_596_800), far(0))] {
        let extreme = pb::CloneFestivalRequest { start_time: start, end_time: end, ..request.clone() };
        assert_eq!(code(c.clone_festival(authed(extreme, &token)).await), "ERR_1000");
    }
    let copy = c.clone_festival(authed(request, &token)).await.expect("clone").into_inner();
    assert_eq!(copy.status, pb::FestivalStatus::Draft as i32);
    assert_eq!((copy.time_zone.as_str(), copy.venue.as_str()), ("Europe/Paris", "Val de Moine"));

    let stages =
        c.list_stages(authed(pb::ListStagesRequest { festival_id: copy.id.clone() }, &token)).await.expect("stages");
    let stages = stages.into_inner().stages;
    assert_eq!(stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Main", "Valley"]);
    assert_eq!(stages.len(), 2);
    assert!(stages.iter().all(|st| st.id != s.main && st.id != s.valley), "new ids");
    let artists =
        c.list_artists(authed(pb::ListArtistsRequest { festival_id: copy.id.clone() }, &token)).await.expect("artists");
    assert_eq!(artists.into_inner().artists.len(), 2);
    let slots = c
        .list_performances(authed(pb::ListPerformancesRequest { festival_id: copy.id.clone() }, &token))
        .await
        .expect("performances")
        .into_inner()
        .performances;
    assert_eq!(slots.len(), 2);
    assert!(slots.iter().all(|p| p.status == pb::PerformanceStatus::Draft as i32 && p.id != p1));
    // 2027-06-18 → 2028-06-16 (in the years the test runs in): the 2027-06-19 18:00 set
    // lands two days earlier in the year, on 2028-06-17.
    assert_eq!(slots[0].start_time, Some(ts("2028-06-17T18:00:00+02:00")));
    let main = stages.iter().find(|st| st.name == "Main").map(|st| st.id.clone()).unwrap_or_default();
    let shift: (String, i32, String) = sqlx::query_as(
        "select place, head_count, to_char(start_time at time zone 'Europe/Paris', 'YYYY-MM-DD HH24:MI') from shifts
         where festival_id = $1::uuid",
    )
    .bind(&copy.id)
    .fetch_one(&env.program.pool)
    .await
    .expect("cloned shift");
    assert_eq!(shift, (main, 4, format!("{} 17:00", day("2028-06-17"))));
    let check = c.check_schedule(authed(pb::CheckScheduleRequest { festival_id: copy.id.clone() }, &token)).await;
    assert!(check.expect("check").into_inner().conflicts.is_empty(), "the copied structure is still conflict-free");
}

#[tokio::test]
async fn a_nul_or_other_control_character_in_text_is_refused_naming_the_field() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, token) = env.user().await;
    let get = |key: &str| pb::GetFestivalRequest { id_or_slug: key.into() };
    assert_eq!(code(c.get_festival(get("\0abc")).await), "ERR_1000");
    let refused = c.get_festival(get("ab\u{1b}[31mc")).await.expect_err("escape sequence");
    assert_eq!(festival_platform::error::violations(&refused)[0].field, "id_or_slug");
    let calendar = c.get_personal_calendar(pb::GetPersonalCalendarRequest { token: "\0.ics".into() }).await;
    assert_eq!(code(calendar), "ERR_1000");
    let named = pb::CreateFestivalRequest { name: "Fest\0ival".into(), ..festival("nul-fest") };
    let refused = c.create_festival(authed(named, &token)).await.expect_err("NUL in a name");
    assert_eq!(festival_platform::error::reason(&refused).as_deref(), Some("ERR_1000"));
    assert_eq!(festival_platform::error::violations(&refused)[0].field, "name");
    assert_eq!(env.festivals().await, 0, "nothing was written");
    // Line breaks and tabs are text, not control characters, where text may hold them.
    let described = pb::CreateFestivalRequest { venue: "Val de Moine\n(north gate)".into(), ..festival("lines-fest") };
    c.create_festival(authed(described, &token)).await.expect("line breaks are fine");
}

#[tokio::test]
async fn reflection_lists_only_what_program_answers() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let env = spawn().await;
    let mut client = ServerReflectionClient::new(env.program.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        client.server_reflection_info(futures::stream::iter([request])).await.expect("reflection").into_inner();
    let answer = answers.message().await.expect("answer").expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        ["festival.program.v1.ProgramService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"],
        "no identity or test-only services that would answer UNIMPLEMENTED"
    );
}

#[tokio::test]
async fn a_creator_whose_organizer_role_is_revoked_no_longer_manages_the_festival() {
    let env = spawn().await;
    let mut c = env.client();
    let (user_id, creator) = env.user().await;
    let f = c.create_festival(authed(festival("revoked-creator"), &creator)).await.expect("create").into_inner();
    let rename =
        |name: &str| pb::UpdateFestivalRequest { festival_id: f.id.clone(), name: name.into(), ..Default::default() };
    c.update_festival(authed(rename("Fresh"), &creator))
        .await
        .expect("the creator manages it before identity's grant arrives");

    // A token's lifetime later: every token the creator holds now comes from identity,
    // with the ORGANIZER membership, or without it once revoked.
    sqlx::query("update festivals set created_at = now() - interval '1 hour' where id = $1::uuid")
        .bind(&f.id)
        .execute(&env.program.pool)
        .await
        .expect("age the festival");
    let uid = uuid::Uuid::parse_str(&user_id).expect("uuid");
    let fid = uuid::Uuid::parse_str(&f.id).expect("uuid");
    let organizer = env.issuer.member(uid, fid, festival_platform::auth::Role::Organizer);
    c.update_festival(authed(rename("Still mine"), &organizer)).await.expect("with the role it still manages");
    let revoked = env.issuer.token(&festival_testkit::tokens::Grant {
        user_id: uid,
        role: festival_platform::auth::Role::User,
        memberships: Vec::new(),
    });
    assert_eq!(
        code(c.update_festival(authed(rename("Taken back"), &revoked)).await),
        "ERR_4000",
        "a draft it can no longer see"
    );
    let kept: String = sqlx::query_scalar("select name from festivals where id = $1::uuid")
        .bind(&f.id)
        .fetch_one(&env.program.pool)
        .await
        .expect("name");
    assert_eq!(kept, "Still mine");
}

#[tokio::test]
async fn a_drafts_slug_is_revealed_to_no_one_else_and_publishing_checks_it() {
    let env = spawn().await;
    let mut c = env.client();
    let (_, alice) = env.user().await;
    let (_, bob) = env.user().await;
    let (_, carol) = env.user().await;
    let by_slug = || pb::GetFestivalRequest { id_or_slug: "secret-lineup".into() };
    let secret =
        c.create_festival(authed(festival("secret-lineup"), &alice)).await.expect("alice's draft").into_inner();

    // Bob picks the same slug: nothing tells him that Alice's draft exists.
    let bobs = c.create_festival(authed(festival("secret-lineup"), &bob)).await.expect("bob's draft").into_inner();
    assert_eq!(code(c.get_festival(by_slug()).await), "ERR_4000", "anonymous callers see no draft");
    assert_eq!(c.get_festival(authed(by_slug(), &alice)).await.expect("alice").into_inner().id, secret.id);
    assert_eq!(c.get_festival(authed(by_slug(), &bob)).await.expect("bob").into_inner().id, bobs.id);
    assert_eq!(code(c.get_festival(authed(by_slug(), &carol)).await), "ERR_4000");
    // A second draft of his own with that slug is refused: it only names his own draft.
    assert_eq!(code(c.create_festival(authed(festival("secret-lineup"), &bob)).await), "ERR_7005");

    // Bob publishes first: the slug is public from now on.
    c.create_stage(authed(stage(&bobs.id, "Main"), &bob)).await.expect("stage");
    c.transition_festival(authed(transition(&bobs.id, pb::FestivalStatus::Published), &bob)).await.expect("publish");
    assert_eq!(c.get_festival(by_slug()).await.expect("public").into_inner().id, bobs.id);
    assert_eq!(code(c.create_festival(authed(festival("secret-lineup"), &carol)).await), "ERR_7005");
    // Alice learns it when she publishes (a public fact by then), and her draft stays a draft.
    c.create_stage(authed(stage(&secret.id, "Main"), &alice)).await.expect("stage");
    let refused = c.transition_festival(authed(transition(&secret.id, pb::FestivalStatus::Published), &alice)).await;
    assert_eq!(code(refused), "ERR_7005");
    let still = c
        .get_festival(authed(pb::GetFestivalRequest { id_or_slug: secret.id.clone() }, &alice))
        .await
        .expect("alice's draft")
        .into_inner();
    assert_eq!(still.status, pb::FestivalStatus::Draft as i32);
}
