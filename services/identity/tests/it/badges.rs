//! Staff badges: issued by a festival's organisers to its members, checked offline by a
//! gate with the festival's badge keys, refused once revoked and the gate's list
//! refreshed; never across festivals.

use chrono::{Duration, Utc};
use ed25519_dalek::SigningKey;
use festival_gate::badge::{BadgeDenied, BadgeGate};
use festival_platform::credential::badge::BadgeRefusal;
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::devices::{create, pair, proof};
use crate::helpers::*;

fn issue(festival: Uuid, user_id: &str, role: pb::Role, zones: &[&str]) -> pb::IssueBadgeRequest {
    pb::IssueBadgeRequest {
        festival_id: festival.to_string(),
        user_id: user_id.into(),
        role: role as i32,
        zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        valid_until: Some(festival_platform::convert::timestamp(Utc::now() + Duration::days(4))),
    }
}

async fn grant(c: &mut Client, festival: Uuid, user_id: &str, role: pb::Role, org: &str) {
    let request =
        pb::GrantMembershipRequest { festival_id: festival.to_string(), user_id: user_id.into(), role: role as i32 };
    c.grant_membership(authed(request, org)).await.expect("grant");
}

/// A gate of `festival` guarding `zone`, loaded as a scanner loads it: keys (public)
/// and the revocation list (with `token`, a gate's caller).
async fn gate(c: &mut Client, festival: Uuid, zone: &str, token: &str) -> BadgeGate {
    let keys = c.get_badge_keys(pb::GetBadgeKeysRequest { festival_id: festival.to_string() }).await;
    let keys = keys.expect("keys").into_inner();
    assert!(!keys.keys.is_empty(), "the festival has a badge key");
    let revoked = revoked(c, festival, token).await;
    BadgeGate::new(festival, zone, &keys, &revoked).expect("keys")
}

async fn revoked(c: &mut Client, festival: Uuid, token: &str) -> pb::ListRevokedBadgesResponse {
    let request = pb::ListRevokedBadgesRequest { festival_id: festival.to_string() };
    c.list_revoked_badges(authed(request, token)).await.expect("revoked").into_inner()
}

fn now() -> u32 {
    u32::try_from(Utc::now().timestamp()).expect("u32")
}

#[tokio::test]
async fn a_badge_opens_its_zones_offline_until_revoked_and_the_list_refreshed() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival, org) = organiser(&app, &mut c).await;
    let (steward, steward_tokens) = signed_in(&mut c).await;
    grant(&mut c, festival, &steward.id, pb::Role::Security, &org).await;

    let badge = c
        .issue_badge(authed(issue(festival, &steward.id, pb::Role::Security, &["backstage", "north-gate"]), &org))
        .await
        .expect("issue")
        .into_inner();
    assert!(!badge.credential.is_empty() && badge.qr_svg.contains("<svg"));
    assert_eq!(badge.zones, ["backstage", "north-gate"]);
    // The holder sees it (with its code); the org's list does not carry codes.
    let mine = c.list_my_badges(authed(pb::ListMyBadgesRequest {}, &steward_tokens.access_token)).await;
    let mine = mine.expect("mine").into_inner().badges;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].credential, badge.credential);
    let listed = c
        .list_badges(authed(pb::ListBadgesRequest { festival_id: festival.to_string(), ..Default::default() }, &org))
        .await
        .expect("list")
        .into_inner()
        .badges;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].credential.is_empty());

    // The steward (a gate's caller) loads the backstage gate; offline from here on.
    let mut backstage = gate(&mut c, festival, "backstage", &steward_tokens.access_token).await;
    let claims = backstage.check(&badge.credential, now()).expect("opens backstage");
    assert_eq!(claims.badge.to_string(), badge.id);
    let pit = gate(&mut c, festival, "pit", &steward_tokens.access_token).await;
    assert_eq!(pit.check(&badge.credential, now()), Err(BadgeDenied::Refused(BadgeRefusal::WrongZone)));
    let mut forged = badge.credential.clone().into_bytes();
    forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(backstage.check(&String::from_utf8(forged).expect("ascii"), now()), Err(BadgeDenied::Forged));
    assert_eq!(backstage.check("not a badge at all", now()), Err(BadgeDenied::Forged));

    let revoke = pb::RevokeBadgeRequest {
        festival_id: festival.to_string(),
        badge_id: badge.id.clone(),
        reason: "lost at the campsite".into(),
    };
    let revoked_badge = c.revoke_badge(authed(revoke.clone(), &org)).await.expect("revoke").into_inner();
    assert!(revoked_badge.revoke_time.is_some());
    assert_eq!(code(c.revoke_badge(authed(revoke, &org)).await), "ERR_4000", "already revoked");
    // Offline, the gate's list is the one it had: the badge still opens until it refreshes.
    assert!(backstage.check(&badge.credential, now()).is_ok());
    let list = revoked(&mut c, festival, &steward_tokens.access_token).await;
    assert_eq!(list.badge_ids, std::slice::from_ref(&badge.id));
    backstage.refresh_revoked(&list);
    assert_eq!(backstage.check(&badge.credential, now()), Err(BadgeDenied::Refused(BadgeRefusal::Revoked)));
    let mine = c.list_my_badges(authed(pb::ListMyBadgesRequest {}, &steward_tokens.access_token)).await;
    assert!(mine.expect("mine").into_inner().badges.is_empty(), "a revoked badge is no longer shown");

    // Both are in the festival's audit log.
    let log = c
        .list_audit_entries(authed(
            pb::ListAuditEntriesRequest { festival_id: festival.to_string(), ..Default::default() },
            &org,
        ))
        .await
        .expect("audit")
        .into_inner()
        .entries;
    let actions: Vec<&str> = log.iter().take(2).map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["BADGE_REVOKED", "BADGE_ISSUED"]);
    assert_eq!(log[0].detail, format!("badge {}: lost at the campsite", badge.id));
}

#[tokio::test]
async fn revoking_the_role_or_disabling_the_account_revokes_its_badges() {
    let app = spawn().await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let (festival, org) = organiser(&app, &mut c).await;
    let (holder, _) = signed_in(&mut c).await;
    grant(&mut c, festival, &holder.id, pb::Role::Cashier, &org).await;
    grant(&mut c, festival, &holder.id, pb::Role::Staff, &org).await;
    let cashier = c.issue_badge(authed(issue(festival, &holder.id, pb::Role::Cashier, &["bar-1"]), &org)).await;
    let cashier = cashier.expect("cashier badge").into_inner();
    let staff = c.issue_badge(authed(issue(festival, &holder.id, pb::Role::Staff, &["camping"]), &org)).await;
    let staff = staff.expect("staff badge").into_inner();

    let revoke_role = pb::RevokeMembershipRequest {
        festival_id: festival.to_string(),
        user_id: holder.id.clone(),
        role: pb::Role::Cashier as i32,
    };
    c.revoke_membership(authed(revoke_role, &org)).await.expect("revoke role");
    assert_eq!(revoked(&mut c, festival, &org).await.badge_ids, std::slice::from_ref(&cashier.id), "that role's only");

    let disable = pb::DisableAccountRequest { user_id: holder.id.clone(), reason: "left the crew".into() };
    c.disable_account(authed(disable, &admin.access_token)).await.expect("disable");
    let mut ids = revoked(&mut c, festival, &org).await.badge_ids;
    ids.sort();
    let mut expected = vec![cashier.id, staff.id];
    expected.sort();
    assert_eq!(ids, expected);
    // A disabled account gets no new badge.
    let again = issue(festival, &holder.id, pb::Role::Staff, &["camping"]);
    assert_eq!(code(c.issue_badge(authed(again, &org)).await), "ERR_4000");
}

#[tokio::test]
async fn another_festival_can_neither_issue_revoke_nor_read_and_bad_badges_write_nothing() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival, org) = organiser(&app, &mut c).await;
    let (other_festival, other_org) = organiser(&app, &mut c).await;
    let (member, member_tokens) = signed_in(&mut c).await;
    grant(&mut c, festival, &member.id, pb::Role::Security, &org).await;

    let request = issue(festival, &member.id, pb::Role::Security, &["backstage"]);
    assert_eq!(code(c.issue_badge(authed(request.clone(), &other_org)).await), "ERR_3002");
    assert_eq!(code(c.issue_badge(authed(request.clone(), &member_tokens.access_token)).await), "ERR_3001");
    let badge = c.issue_badge(authed(request, &org)).await.expect("issue").into_inner();
    let revoke = pb::RevokeBadgeRequest {
        festival_id: other_festival.to_string(),
        badge_id: badge.id.clone(),
        reason: "not yours".into(),
    };
    assert_eq!(code(c.revoke_badge(authed(revoke.clone(), &other_org)).await), "ERR_4000");
    let revoke = pb::RevokeBadgeRequest { festival_id: festival.to_string(), ..revoke };
    assert_eq!(code(c.revoke_badge(authed(revoke, &other_org)).await), "ERR_3002");
    let list = pb::ListRevokedBadgesRequest { festival_id: festival.to_string() };
    assert_eq!(code(c.list_revoked_badges(authed(list.clone(), &other_org)).await), "ERR_3002");
    let (_, fan) = signed_in(&mut c).await;
    assert_eq!(code(c.list_revoked_badges(authed(list.clone(), &fan.access_token)).await), "ERR_3002");

    // Devices: the festival's own reads the list; another festival's is a stranger; a
    // revoked one is refused at once.
    let devices = c.clone();
    let device_token = |festival: Uuid, org: String| {
        let mut c = devices.clone();
        async move {
            let created = c.create_device(authed(create(festival, pb::DeviceLevel::Steward), &org)).await;
            let created = created.expect("device").into_inner();
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let device = c.pair_device(pair(&created.pairing_code, &key)).await.expect("pair").into_inner();
            let token = c.issue_device_token(proof(&device.id, &key, Utc::now())).await.expect("token");
            (device.id, token.into_inner().access_token)
        }
    };
    let (device, token) = device_token(festival, org.clone()).await;
    c.list_revoked_badges(authed(list.clone(), &token)).await.expect("the festival's device reads it");
    let (_, stranger) = device_token(other_festival, other_org.clone()).await;
    assert_eq!(code(c.list_revoked_badges(authed(list.clone(), &stranger)).await), "ERR_3002");
    let revoke_device = pb::RevokeDeviceRequest { festival_id: festival.to_string(), device_id: device };
    c.revoke_device(authed(revoke_device, &org)).await.expect("revoke device");
    assert_eq!(code(c.list_revoked_badges(authed(list, &token)).await), "ERR_2010");

    // Lost badges are revoked and replaced, not piled up: four live ones at most.
    for _ in 1..4 {
        let spare = issue(festival, &member.id, pb::Role::Security, &["BackStage"]);
        let spare = c.issue_badge(authed(spare, &org)).await.expect("a spare").into_inner();
        assert_eq!(spare.zones, ["backstage"], "zones are written lower case");
    }
    let fifth = issue(festival, &member.id, pb::Role::Security, &["backstage"]);
    assert_eq!(code(c.issue_badge(authed(fifth, &org)).await), "ERR_1000");

    // Bad badges: refused with a catalogued code, nothing written.
    let badges_before: i64 = sqlx::query_scalar("select count(*) from badges").fetch_one(&app.pool).await.expect("n");
    let (outsider, _) = signed_in(&mut c).await;
    let past = Some(festival_platform::convert::timestamp(Utc::now() - Duration::hours(1)));
    let far = Some(festival_platform::convert::timestamp(Utc::now() + Duration::days(400)));
    for (request, expected) in [
        (issue(festival, &outsider.id, pb::Role::Security, &["backstage"]), "ERR_1000"),
        (issue(festival, &member.id, pb::Role::Cashier, &["backstage"]), "ERR_1000"),
        (issue(festival, &member.id, pb::Role::User, &["backstage"]), "ERR_1000"),
        (issue(festival, &member.id, pb::Role::Security, &["back stage"]), "ERR_1000"),
        (issue(festival, &member.id, pb::Role::Security, &[&"z".repeat(33)]), "ERR_1000"),
        (
            pb::IssueBadgeRequest { valid_until: past, ..issue(festival, &member.id, pb::Role::Security, &[]) },
            "ERR_1000",
        ),
        (
            pb::IssueBadgeRequest { valid_until: far, ..issue(festival, &member.id, pb::Role::Security, &[]) },
            "ERR_1000",
        ),
        (
            pb::IssueBadgeRequest { valid_until: None, ..issue(festival, &member.id, pb::Role::Security, &[]) },
            "ERR_1001",
        ),
        (pb::IssueBadgeRequest { role: 0, ..issue(festival, &member.id, pb::Role::Security, &[]) }, "ERR_1001"),
        (pb::IssueBadgeRequest { role: 99, ..issue(festival, &member.id, pb::Role::Security, &[]) }, "ERR_1003"),
        (issue(festival, "not-a-uuid", pb::Role::Security, &[]), "ERR_1004"),
        (issue(festival, &Uuid::now_v7().to_string(), pb::Role::Security, &[]), "ERR_4000"),
    ] {
        assert_eq!(code(c.issue_badge(authed(request.clone(), &org)).await), expected, "{request:?}");
    }
    let badges_after: i64 = sqlx::query_scalar("select count(*) from badges").fetch_one(&app.pool).await.expect("n");
    assert_eq!(badges_after, badges_before);
}
