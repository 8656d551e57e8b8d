//! Entrances: validity by day and zone, check-in lists, exits and re-entry, supervisors,
//! devices, offline snapshots and uploads, and the counts organisers see.

use std::time::Duration;

use festival_platform::auth::{DeviceLevel, Role};
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_ticketing::domain::checkin::{self, Direction, Refusal};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A category of its own quota (100), valid as given.
async fn category(
    env: &Env,
    f: &Festival,
    name: &str,
    days: Vec<String>,
    zones: &[&str],
    reentry: bool,
) -> pb::Category {
    let request = pb::CreateCategoryRequest {
        name: name.into(),
        valid_days: days,
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        reentry,
        ..Default::default()
    };
    env.category_from(f, request, 100).await
}

/// One ticket of `category`, sold at the box office: (ticket id, credential).
async fn ticket(env: &Env, f: &Festival, category: &str) -> (String, String) {
    let cashier = env.member(f, Role::Cashier);
    let order =
        env.client().create_order(authed(box_office(f, category, 1), &cashier)).await.expect("sold").into_inner();
    (order.tickets[0].id.clone(), order.tickets[0].credential.clone())
}

fn scan(f: &Festival, credential: &str, list: &str, direction: pb::ScanDirection) -> pb::RedeemRequest {
    pb::RedeemRequest {
        festival_id: f.id.to_string(),
        credential: credential.into(),
        gate: "main".into(),
        list_id: list.into(),
        direction: direction as i32,
        ..Default::default()
    }
}

fn day_text(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

async fn list(env: &Env, f: &Festival, name: &str, categories: &[&str], zone: &str) -> pb::CheckInList {
    env.client()
        .create_check_in_list(authed(
            pb::CreateCheckInListRequest {
                festival_id: f.id.to_string(),
                name: name.into(),
                category_ids: categories.iter().map(|c| (*c).to_owned()).collect(),
                zone: zone.into(),
            },
            &f.organizer,
        ))
        .await
        .expect("list")
        .into_inner()
}

#[tokio::test]
async fn days_lists_zones_and_re_entry_decide_who_gets_in_and_supervisors_override_with_a_reason() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let today = checkin::local_day("Europe/Paris", env.app.clock.now());
    let tomorrow = today.succ_opt().expect("tomorrow");
    let ga = category(&env, &f, "GA", Vec::new(), &[], false).await;
    let weekend = category(&env, &f, "Weekend", Vec::new(), &[], true).await;
    let vip = category(&env, &f, "VIP", Vec::new(), &["vip"], false).await;
    let saturday = category(&env, &f, "Saturday", vec![day_text(tomorrow)], &[], false).await;
    assert_eq!(
        (saturday.valid_days.clone(), vip.zones.clone(), weekend.reentry),
        (vec![day_text(tomorrow)], vec!["vip".to_owned()], true)
    );
    let vip_area = list(&env, &f, "VIP area", &[&vip.id], "vip").await;
    let security = env.member(&f, Role::Security);
    let entry = pb::ScanDirection::Entry;
    let exit = pb::ScanDirection::Exit;

    // A GA ticket is not on the VIP list; a VIP ticket enters the grounds, then the VIP
    // area: each entrance admits it once.
    let (_, ga_ticket) = ticket(&env, &f, &ga.id).await;
    assert_eq!(code(c.redeem(authed(scan(&f, &ga_ticket, &vip_area.id, entry), &security)).await), "ERR_6013");
    let (vip_id, vip_ticket) = ticket(&env, &f, &vip.id).await;
    c.redeem(authed(scan(&f, &vip_ticket, "", entry), &security)).await.expect("grounds");
    let in_vip =
        c.redeem(authed(scan(&f, &vip_ticket, &vip_area.id, entry), &security)).await.expect("vip area").into_inner();
    assert_eq!(
        (in_vip.ticket_id.as_str(), in_vip.list_id.as_str(), in_vip.reentry),
        (vip_id.as_str(), vip_area.id.as_str(), false)
    );
    assert_eq!(code(c.redeem(authed(scan(&f, &vip_ticket, &vip_area.id, entry), &security)).await), "ERR_6001");
    let event = env.app.last_event::<pb::TicketAdmitted>().await;
    assert_eq!((event.list_id.as_str(), event.zone.as_str(), event.offline), (vip_area.id.as_str(), "vip", false));

    // Re-entry: the weekend ticket leaves and comes back; GA leaves for good.
    let (_, weekend_ticket) = ticket(&env, &f, &weekend.id).await;
    assert_eq!(
        code(c.redeem(authed(scan(&f, &weekend_ticket, "", exit), &security)).await),
        "ERR_6014",
        "not inside yet"
    );
    c.redeem(authed(scan(&f, &weekend_ticket, "", entry), &security)).await.expect("in");
    let out = c.redeem(authed(scan(&f, &weekend_ticket, "", exit), &security)).await.expect("out").into_inner();
    assert_eq!(out.direction, pb::ScanDirection::Exit as i32);
    let exited = env.app.last_event::<pb::TicketExited>().await;
    assert_eq!(exited.ticket_id, out.ticket_id);
    let back = c.redeem(authed(scan(&f, &weekend_ticket, "", entry), &security)).await.expect("back in").into_inner();
    assert!(back.reentry);
    assert_eq!(
        code(c.redeem(authed(scan(&f, &weekend_ticket, "", entry), &security)).await),
        "ERR_6001",
        "already inside"
    );
    c.redeem(authed(scan(&f, &ga_ticket, "", entry), &security)).await.expect("ga in");
    c.redeem(authed(scan(&f, &ga_ticket, "", exit), &security)).await.expect("ga out");
    assert_eq!(code(c.redeem(authed(scan(&f, &ga_ticket, "", entry), &security)).await), "ERR_6001", "no re-entry");

    // A Saturday ticket today: wrong day, with the day it is valid on. Security cannot
    // override; the organiser can, with a reason, and a revoked or used one never.
    let (_, saturday_ticket) = ticket(&env, &f, &saturday.id).await;
    let refused = c.redeem(authed(scan(&f, &saturday_ticket, "", entry), &security)).await.expect_err("wrong day");
    assert_eq!(refused.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(), Some("ERR_6012"));
    assert!(refused.message().contains(&day_text(tomorrow)), "{}", refused.message());
    let mut overriding = scan(&f, &saturday_ticket, "", entry);
    overriding.override_reason = "lost wristband, checked ID".into();
    assert_eq!(code(c.redeem(authed(overriding.clone(), &security)).await), "ERR_3001");
    let (_, later_saturday) = ticket(&env, &f, &saturday.id).await;
    let overridden = c.redeem(authed(overriding, &f.organizer)).await.expect("override").into_inner();
    assert!(overridden.overridden);
    let mut used_again = scan(&f, &saturday_ticket, "", entry);
    used_again.override_reason = "insists".into();
    assert_eq!(code(c.redeem(authed(used_again, &f.organizer)).await), "ERR_6001", "a used ticket is not overridden");
    // Tomorrow the other Saturday ticket gets in without help.
    env.app.clock.advance(DAY);
    let plain = c.redeem(authed(scan(&f, &later_saturday, "", entry), &security)).await.expect("saturday").into_inner();
    assert!(!plain.overridden);

    // Manual check-in by ticket id: supervisors only.
    let (manual_id, _) = ticket(&env, &f, &ga.id).await;
    let by_hand = pb::RedeemRequest {
        festival_id: f.id.to_string(),
        ticket_id: manual_id.clone(),
        gate: "main".into(),
        ..Default::default()
    };
    assert_eq!(code(c.redeem(authed(by_hand.clone(), &security)).await), "ERR_3001");
    assert_eq!(c.redeem(authed(by_hand, &f.organizer)).await.expect("by hand").into_inner().ticket_id, manual_id);

    // The organiser's counts: every entrance's admissions, people on site once each.
    let stats = c
        .get_check_in_stats(authed(pb::GetCheckInStatsRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("stats")
        .into_inner();
    let per_list: Vec<(String, i64)> = stats.lists.iter().map(|l| (l.list_id.clone(), l.checked_in)).collect();
    // Grounds: VIP, weekend, GA, Saturday (overridden), Saturday, manual.
    assert_eq!(per_list, vec![(String::new(), 6), (vip_area.id.clone(), 1)]);
    // Inside: VIP (grounds and VIP area, counted once), weekend, two Saturdays, manual.
    assert_eq!(stats.on_site, 5);
    let vip_counts = stats.categories.iter().find(|c| c.category_id == vip.id).expect("vip row");
    assert_eq!((vip_counts.sold, vip_counts.checked_in), (1, 1));
    assert_eq!(
        code(
            c.get_check_in_stats(authed(pb::GetCheckInStatsRequest { festival_id: f.id.to_string() }, &security)).await
        ),
        "ERR_3001"
    );
}

#[tokio::test]
async fn bad_lists_and_validity_are_refused_with_their_codes() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", Vec::new(), &[], false).await;
    let bad_category = |days: Vec<&str>, zones: Vec<&str>| pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: format!("bad {}", Uuid::now_v7()),
        valid_days: days.into_iter().map(str::to_owned).collect(),
        zones: zones.into_iter().map(str::to_owned).collect(),
        ..Default::default()
    };
    for (request, expected) in [
        (bad_category(vec!["2027-02-30"], vec![]), "ERR_1000"),
        (bad_category(vec!["tomorrow"], vec![]), "ERR_1000"),
        (bad_category(vec!["2027-07-01", "2027-07-01"], vec![]), "ERR_1000"),
        (bad_category(vec![], vec![""]), "ERR_1001"),
        (bad_category(vec![], vec!["vip", "vip"]), "ERR_1000"),
        (bad_category(vec![], vec!["bad\u{0}zone"]), "ERR_1000"),
    ] {
        assert_eq!(code(c.create_category(authed(request.clone(), &f.organizer)).await), expected, "{request:?}");
    }
    let new_list = |categories: Vec<String>| pb::CreateCheckInListRequest {
        festival_id: f.id.to_string(),
        name: "North".into(),
        category_ids: categories,
        zone: String::new(),
    };
    assert_eq!(
        code(c.create_check_in_list(authed(new_list(vec![Uuid::now_v7().to_string()]), &f.organizer)).await),
        "ERR_4000"
    );
    assert_eq!(code(c.create_check_in_list(authed(new_list(vec!["nope".into()]), &f.organizer)).await), "ERR_1004");
    let security = env.member(&f, Role::Security);
    assert_eq!(code(c.create_check_in_list(authed(new_list(vec![ga.id.clone()]), &security)).await), "ERR_3001");
    c.create_check_in_list(authed(new_list(vec![ga.id.clone(), ga.id.clone()]), &f.organizer)).await.expect("list");
    assert_eq!(
        code(c.create_check_in_list(authed(new_list(Vec::new()), &f.organizer)).await),
        "ERR_4001",
        "name taken"
    );
    let lists = c
        .list_check_in_lists(authed(pb::ListCheckInListsRequest { festival_id: f.id.to_string() }, &security))
        .await
        .expect("lists")
        .into_inner()
        .lists;
    assert_eq!(
        lists.iter().map(|l| (l.name.as_str(), l.category_ids.clone())).collect::<Vec<_>>(),
        vec![("North", vec![ga.id.clone()])]
    );
    let (_, credential) = ticket(&env, &f, &ga.id).await;
    let mut unknown_list = scan(&f, &credential, &Uuid::now_v7().to_string(), pb::ScanDirection::Entry);
    assert_eq!(code(c.redeem(authed(unknown_list.clone(), &security)).await), "ERR_4000");
    unknown_list.list_id = String::new();
    unknown_list.direction = 7;
    assert_eq!(code(c.redeem(authed(unknown_list.clone(), &security)).await), "ERR_1003");
    unknown_list.direction = 0;
    unknown_list.ticket_id = Uuid::now_v7().to_string();
    assert_eq!(
        code(c.redeem(authed(unknown_list, &f.organizer)).await),
        "ERR_1000",
        "a credential or a ticket id, not both"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from ticket_presence")
            .fetch_one(&env.app.pool)
            .await
            .expect("count"),
        0,
        "nothing admitted"
    );
}

#[tokio::test]
async fn a_device_scans_at_its_own_gate_and_festival_and_is_refused_once_identity_revokes_it() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let other = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", Vec::new(), &[], false).await;
    let steward = env.scanner(&f, "north", DeviceLevel::Steward);
    let supervisor = env.scanner(&f, "north", DeviceLevel::Supervisor);
    let (_, credential) = ticket(&env, &f, &ga.id).await;

    let mut at_north = scan(&f, &credential, "", pb::ScanDirection::Entry);
    at_north.gate = String::new();
    let admitted = c.redeem(authed(at_north.clone(), &steward.token)).await.expect("device scans").into_inner();
    assert_eq!(admitted.gate, "north", "a device scans at its own gate");
    let scanned_by: (Option<Uuid>, Uuid) =
        sqlx::query_as("select first_device, first_actor from ticket_presence where ticket_id = $1")
            .bind(Uuid::parse_str(&admitted.ticket_id).expect("id"))
            .fetch_one(&env.app.pool)
            .await
            .expect("scan row");
    assert_eq!(scanned_by, (Some(steward.id), steward.id));
    let (_, second) = ticket(&env, &f, &ga.id).await;
    let mut elsewhere = scan(&f, &second, "", pb::ScanDirection::Entry);
    elsewhere.gate = "south".into();
    assert_eq!(code(c.redeem(authed(elsewhere, &steward.token)).await), "ERR_1000");
    let mut other_festival = scan(&other, &second, "", pb::ScanDirection::Entry);
    other_festival.gate = String::new();
    assert_eq!(code(c.redeem(authed(other_festival, &steward.token)).await), "ERR_3002");
    // A device token is not a person's: person RPCs refuse it.
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&ga.id, 1)]), &steward.token)).await), "ERR_2002");
    assert_eq!(code(c.list_my_tickets(authed(pb::ListMyTicketsRequest::default(), &steward.token)).await), "ERR_2002");

    // Manual check-in: the supervisor device may, the steward may not.
    let (manual, _) = ticket(&env, &f, &ga.id).await;
    let by_hand = pb::RedeemRequest { festival_id: f.id.to_string(), ticket_id: manual.clone(), ..Default::default() };
    assert_eq!(code(c.redeem(authed(by_hand.clone(), &steward.token)).await), "ERR_3001");
    c.redeem(authed(by_hand, &supervisor.token)).await.expect("supervisor by hand");

    // Identity revokes the steward: ticketing hears it and refuses the (unexpired) token.
    festival_testkit::publish_event(
        &env.app.naming(),
        &festival_proto::identity::v1::DeviceRevoked {
            device_id: steward.id.to_string(),
            festival_id: f.id.to_string(),
            revoked_by: Uuid::now_v7().to_string(),
        },
    )
    .await;
    let refused = festival_testkit::eventually(Duration::from_secs(15), || {
        let (mut c, request, token) = (env.client(), at_north.clone(), steward.token.clone());
        async move { code(c.redeem(authed(request, &token)).await) == "ERR_2010" }
    })
    .await;
    assert!(refused, "a revoked device keeps scanning");
    let snapshot = pb::GetScannerSnapshotRequest { festival_id: f.id.to_string(), ..Default::default() };
    assert_eq!(code(c.get_scanner_snapshot(authed(snapshot.clone(), &steward.token)).await), "ERR_2010");
    c.get_scanner_snapshot(authed(snapshot, &supervisor.token)).await.expect("the other device still works");
}

/// The offline scanner's answer for one ticket, from its snapshot alone: the shipped
/// offline gate (`festival_gate::offline`), as a scanner runs it.
fn offline_answer(
    snapshot: &pb::ScannerSnapshot,
    credential: &str,
    direction: Direction,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Refusal> {
    let gate = festival_gate::offline::Gate::from_snapshot(snapshot).expect("a usable snapshot");
    match gate.answer(credential, direction, now) {
        Ok(_) => Ok(()),
        Err(festival_gate::offline::Refused::Rule(refusal)) => Err(refusal),
        Err(other) => panic!("a genuine ticket of this festival got {other:?}"),
    }
}

fn refusal_of(code: &str) -> Result<(), Refusal> {
    match code {
        "OK" => Ok(()),
        "ERR_6001" => Err(Refusal::AlreadyUsed),
        "ERR_6009" => Err(Refusal::Revoked),
        "ERR_6012" => Err(Refusal::WrongDay),
        "ERR_6013" => Err(Refusal::WrongList),
        "ERR_6014" => Err(Refusal::NotInside),
        other => panic!("not a gate answer: {other}"),
    }
}

/// Every list rule, online and offline on the same cases: the answers match.
#[tokio::test]
async fn an_offline_scanner_gives_the_online_answer_for_every_list_rule() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let today = checkin::local_day("Europe/Paris", env.app.clock.now());
    let tomorrow = day_text(today.succ_opt().expect("tomorrow"));
    let categories = [
        category(&env, &f, "GA", Vec::new(), &[], false).await,
        category(&env, &f, "Weekend", Vec::new(), &[], true).await,
        category(&env, &f, "VIP", Vec::new(), &["vip"], true).await,
        category(&env, &f, "Today", vec![day_text(today)], &[], false).await,
        category(&env, &f, "Tomorrow", vec![tomorrow], &[], false).await,
    ];
    let vip_list = list(&env, &f, "VIP", &[&categories[2].id], "vip").await;
    let day_list = list(&env, &f, "Day tickets", &[&categories[3].id, &categories[4].id], "").await;
    let zone_list = list(&env, &f, "Any VIP zone", &[], "vip").await;
    let security = env.member(&f, Role::Security);
    let entrances = [String::new(), vip_list.id.clone(), day_list.id.clone(), zone_list.id.clone()];
    // Where a ticket stands before the scan: fresh, inside, left, revoked, revoked while
    // inside.
    let mut cases = 0;
    for category in &categories {
        for entrance in &entrances {
            for before in ["fresh", "inside", "left", "revoked", "revoked inside"] {
                for direction in [Direction::Entry, Direction::Exit] {
                    let cashier = env.member(&f, Role::Cashier);
                    let order = c
                        .create_order(authed(box_office(&f, &category.id, 1), &cashier))
                        .await
                        .expect("sold")
                        .into_inner();
                    let (ticket_id, credential) = (order.tickets[0].id.clone(), order.tickets[0].credential.clone());
                    let mut by_hand = pb::RedeemRequest {
                        festival_id: f.id.to_string(),
                        ticket_id: ticket_id.clone(),
                        gate: "setup".into(),
                        list_id: entrance.clone(),
                        override_reason: "test setup".into(),
                        ..Default::default()
                    };
                    match before {
                        "revoked inside" => {
                            c.redeem(authed(by_hand.clone(), &f.organizer)).await.expect("setup entry");
                            c.cancel_order(authed(
                                pb::CancelOrderRequest {
                                    order_id: order.id.clone(),
                                    reason: String::new(),
                                    idempotency_key: format!("c-{}", order.id),
                                },
                                &f.organizer,
                            ))
                            .await
                            .expect("cancel");
                        }
                        "inside" | "left" => {
                            c.redeem(authed(by_hand.clone(), &f.organizer)).await.expect("setup entry");
                            if before == "left" {
                                by_hand.direction = pb::ScanDirection::Exit as i32;
                                c.redeem(authed(by_hand, &f.organizer)).await.expect("setup exit");
                            }
                        }
                        "revoked" => {
                            c.cancel_order(authed(
                                pb::CancelOrderRequest {
                                    order_id: order.id.clone(),
                                    reason: String::new(),
                                    idempotency_key: format!("c-{}", order.id),
                                },
                                &f.organizer,
                            ))
                            .await
                            .expect("cancel");
                        }
                        _ => {}
                    }
                    let snapshot = c
                        .get_scanner_snapshot(authed(
                            pb::GetScannerSnapshotRequest {
                                festival_id: f.id.to_string(),
                                list_id: entrance.clone(),
                                include_tickets: true,
                            },
                            &security,
                        ))
                        .await
                        .expect("snapshot")
                        .into_inner();
                    let offline = offline_answer(&snapshot, &credential, direction, env.app.clock.now());
                    let pb_direction = match direction {
                        Direction::Entry => pb::ScanDirection::Entry,
                        Direction::Exit => pb::ScanDirection::Exit,
                    };
                    let online = refusal_of(&outcome(
                        c.redeem(authed(scan(&f, &credential, entrance, pb_direction), &security)).await,
                    ));
                    assert_eq!(online, offline, "{} at {entrance:?}, {before}, {direction:?}", category.name);
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 5 * 4 * 5 * 2);
}

#[tokio::test]
async fn offline_uploads_are_signed_applied_once_and_report_duplicates_and_revoked_tickets() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", Vec::new(), &[], false).await;
    let north = env.scanner(&f, "north", DeviceLevel::Steward);
    let south = env.scanner(&f, "south", DeviceLevel::Steward);
    let (ticket_id, credential) = ticket(&env, &f, &ga.id).await;
    let t0 = env.app.clock.now() - chrono::Duration::minutes(30);

    // Both gates were offline and both let the same ticket in: north first.
    let north_upload = north.upload(&f, "north-1", vec![offline_entry(&credential, t0)]);
    let first = c.upload_scans(authed(north_upload.clone(), &north.token)).await.expect("north uploads").into_inner();
    assert_eq!((first.admitted, first.duplicates, first.flagged, first.replayed), (1, 0, 0, false));
    assert_eq!(first.results[0].outcome, pb::ScanOutcome::Admitted as i32);
    let admitted = env.app.last_event::<pb::TicketAdmitted>().await;
    assert_eq!(
        (admitted.ticket_id.as_str(), admitted.gate.as_str(), admitted.offline),
        (ticket_id.as_str(), "north", true)
    );
    assert_eq!(admitted.admit_time.map(|t| t.seconds), Some(t0.timestamp()), "when it was scanned");
    let south_scan = offline_entry(&credential, t0 + chrono::Duration::minutes(5));
    let second = c
        .upload_scans(authed(south.upload(&f, "south-1", vec![south_scan]), &south.token))
        .await
        .expect("south uploads")
        .into_inner();
    assert_eq!((second.admitted, second.duplicates, second.flagged), (0, 1, 1));
    let duplicate = &second.results[0];
    assert_eq!((duplicate.outcome, duplicate.first_use_gate.as_str()), (pb::ScanOutcome::Duplicate as i32, "north"));
    assert_eq!(duplicate.first_use_time.as_ref().map(|t| t.seconds), Some(t0.timestamp()));
    // North's own entry again seconds later (its online answer lost to a timeout, it let
    // the same person in offline): a duplicate, not a second entry to flag.
    let echo_scan = offline_entry(&credential, t0 + chrono::Duration::seconds(10));
    let echo = c
        .upload_scans(authed(north.upload(&f, "north-echo", vec![echo_scan]), &north.token))
        .await
        .expect("echo")
        .into_inner();
    assert_eq!((echo.admitted, echo.duplicates, echo.flagged), (0, 1, 0));

    // The same upload again: answered as the first time, applied once.
    let replay = c.upload_scans(authed(north_upload.clone(), &north.token)).await.expect("replay").into_inner();
    assert!(replay.replayed);
    assert_eq!((replay.admitted, replay.results.clone()), (first.admitted, first.results.clone()));
    let admissions: i64 = sqlx::query_scalar("select count(*) from scans where outcome = 'ADMITTED'")
        .fetch_one(&env.app.pool)
        .await
        .expect("count");
    assert_eq!(admissions, 1);

    // A ticket cancelled before its offline scan was uploaded: recorded and flagged.
    let cashier = env.member(&f, Role::Cashier);
    let order = c.create_order(authed(box_office(&f, &ga.id, 1), &cashier)).await.expect("sold").into_inner();
    env.cancel(&f, &order.id).await;
    let stranger = festival_platform::credential::Issuer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let forged = stranger.issue(&festival_platform::credential::Claims {
        kind: festival_platform::credential::Kind::Ticket,
        festival: f.id,
        subject: Uuid::now_v7(),
        issued_at: 1_800_000_000,
    });
    let mut refused_offline = offline_entry(&forged, t0);
    refused_offline.accepted = false;
    let mixed = c
        .upload_scans(authed(
            north.upload(&f, "north-2", vec![offline_entry(&order.tickets[0].credential, t0), refused_offline]),
            &north.token,
        ))
        .await
        .expect("mixed")
        .into_inner();
    let outcomes: Vec<(i32, bool)> = mixed.results.iter().map(|r| (r.outcome, r.flagged)).collect();
    assert_eq!(outcomes, vec![(pb::ScanOutcome::Revoked as i32, true), (pb::ScanOutcome::Forged as i32, false)]);
    let flagged: i64 =
        sqlx::query_scalar("select count(*) from scans where flagged").fetch_one(&env.app.pool).await.expect("count");
    assert_eq!(flagged, 2, "the duplicate and the revoked ticket");

    // Tampered, signed by another key, for another device, by a person: refused whole.
    let mut tampered = north.upload(&f, "north-3", vec![offline_entry(&credential, t0)]);
    let last = tampered.batch.len() - 1;
    tampered.batch[last] ^= 1;
    assert_eq!(code(c.upload_scans(authed(tampered, &north.token)).await), "ERR_2011");
    let south_signed = south.upload(&f, "north-3", vec![offline_entry(&credential, t0)]);
    assert_eq!(
        code(c.upload_scans(authed(south_signed, &north.token)).await),
        "ERR_2011",
        "south's key, north's token"
    );
    let mut forged_signature = north.upload(&f, "north-3", vec![offline_entry(&credential, t0)]);
    forged_signature.signature = "AAAA".into();
    assert_eq!(code(c.upload_scans(authed(forged_signature, &north.token)).await), "ERR_2011");
    assert_eq!(
        code(c.upload_scans(authed(north_upload.clone(), &south.token)).await),
        "ERR_2011",
        "north's batch, south's token"
    );
    let security = env.member(&f, Role::Security);
    assert_eq!(code(c.upload_scans(authed(north_upload, &security)).await), "ERR_3001");
    let too_old =
        north.upload(&f, "north-7", vec![offline_entry(&credential, env.app.clock.now() - chrono::Duration::days(8))]);
    assert_eq!(code(c.upload_scans(authed(too_old, &north.token)).await), "ERR_1000");
    // What the scanner refused changes nothing: the ticket stays unused.
    let (unused_id, unused) = ticket(&env, &f, &ga.id).await;
    let mut refused = offline_entry(&unused, t0);
    refused.accepted = false;
    let answer = c
        .upload_scans(authed(north.upload(&f, "north-8", vec![refused]), &north.token))
        .await
        .expect("refused scan")
        .into_inner();
    assert_eq!(
        (answer.results[0].outcome, answer.results[0].flagged),
        (pb::ScanOutcome::RefusedByScanner as i32, false)
    );
    let still_unused: i64 = sqlx::query_scalar("select count(*) from ticket_presence where ticket_id = $1")
        .bind(Uuid::parse_str(&unused_id).expect("id"))
        .fetch_one(&env.app.pool)
        .await
        .expect("count");
    assert_eq!(still_unused, 0);
    let future =
        north.upload(&f, "north-4", vec![offline_entry(&credential, env.app.clock.now() + chrono::Duration::hours(1))]);
    assert_eq!(code(c.upload_scans(authed(future, &north.token)).await), "ERR_1000");
    assert_eq!(code(c.upload_scans(authed(north.upload(&f, "north-5", Vec::new()), &north.token)).await), "ERR_1000");
    let mut garbage = north.upload(&f, "north-6", vec![offline_entry(&credential, t0)]);
    garbage.batch = vec![0xff; 40];
    use ed25519_dalek::Signer as _;
    garbage.signature = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        north.key.sign(&garbage.batch).to_bytes(),
    );
    assert_eq!(code(c.upload_scans(authed(garbage, &north.token)).await), "ERR_1000", "signed garbage");
}

/// Two offline gates upload the same ticket at the same moment: one admission, one
/// duplicate. The negative control (race-hooks: no guard on the presence row) must see
/// the ticket admitted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_offline_uploads_of_one_ticket_admit_it_once() {
    let env = spawn().await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", Vec::new(), &[], false).await;
    let gates: Vec<Scanner> = (0..2).map(|i| env.scanner(&f, &format!("gate-{i}"), DeviceLevel::Steward)).collect();
    let mut doubled_rounds = 0;
    for round in 0..5 {
        let (_, credential) = ticket(&env, &f, &ga.id).await;
        let at = env.app.clock.now() - chrono::Duration::minutes(1);
        let calls: Vec<_> = gates
            .iter()
            .map(|gate| {
                let request = gate.upload(&f, &format!("round-{round}"), vec![offline_entry(&credential, at)]);
                let (mut c, token) = (env.client(), gate.token.clone());
                async move { c.upload_scans(authed(request, &token)).await.map(|r| r.into_inner()) }
            })
            .collect();
        let answers = all_at_once(calls).await;
        let (mut admitted, mut duplicates) = (0, 0);
        for answer in &answers {
            match answer {
                Ok(upload) => {
                    admitted += upload.admitted;
                    duplicates += upload.duplicates;
                }
                Err(status) => panic!("round {round}: {status:?}"),
            }
        }
        if cfg!(feature = "race-hooks") {
            doubled_rounds += usize::from(admitted > 1);
        } else {
            assert_eq!((admitted, duplicates), (1, 1), "round {round}");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(doubled_rounds > 0, "negative control: without the guard two gates must both admit");
    }
}

/// The next counts a watch sends, within 10 s.
async fn next(counts: &mut tonic::Streaming<pb::CheckInStats>) -> pb::CheckInStats {
    use futures::StreamExt as _;
    tokio::time::timeout(Duration::from_secs(10), counts.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .expect("counts")
}

/// The live counter: the counts at once, then each change (within its one-second poll),
/// for organisers only.
#[tokio::test]
async fn the_live_counter_sends_the_counts_then_each_change() {
    let env = spawn_with(|c| c.gates.watch_interval_ms = 100).await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = category(&env, &f, "GA", Vec::new(), &[], true).await;
    let (_, first) = ticket(&env, &f, &ga.id).await;
    let security = env.member(&f, Role::Security);
    let watch = pb::WatchCheckInsRequest { festival_id: f.id.to_string() };
    assert_eq!(code(c.watch_check_ins(authed(watch.clone(), &security)).await), "ERR_3001");
    let mut counts = c.watch_check_ins(authed(watch, &f.organizer)).await.expect("watch").into_inner();
    assert_eq!(next(&mut counts).await.on_site, 0);
    c.redeem(authed(scan(&f, &first, "", pb::ScanDirection::Entry), &security)).await.expect("in");
    let after_entry = next(&mut counts).await;
    assert_eq!((after_entry.on_site, after_entry.lists.len()), (1, 1));
    c.redeem(authed(scan(&f, &first, "", pb::ScanDirection::Exit), &security)).await.expect("out");
    assert_eq!(next(&mut counts).await.on_site, 0, "an exit counts down");
    // A bounded number of counters per festival (20 by default).
    let watch = || pb::WatchCheckInsRequest { festival_id: f.id.to_string() };
    let mut open = Vec::new();
    for _ in 1..20 {
        open.push(c.watch_check_ins(authed(watch(), &f.organizer)).await.expect("watch"));
    }
    assert_eq!(code(c.watch_check_ins(authed(watch(), &f.organizer)).await), "ERR_4005");
    drop(open);
    drop(counts);
    let reopened = festival_testkit::eventually(Duration::from_secs(10), || {
        let (mut c, request, token) = (env.client(), watch(), f.organizer.clone());
        async move { c.watch_check_ins(authed(request, &token)).await.is_ok() }
    })
    .await;
    assert!(reopened, "closed counters give their places back");
}
