use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn grant(festival: Uuid, user: &str, role: pb::Role) -> pb::GrantMembershipRequest {
    pb::GrantMembershipRequest { festival_id: festival.to_string(), user_id: user.into(), role: role as i32 }
}

#[tokio::test]
async fn only_an_admin_or_that_festivals_organizer_may_grant_roles() {
    let app = spawn().await;
    let mut c = client(&app);
    let (festival_a, festival_b) = (Uuid::now_v7(), Uuid::now_v7());

    let admin = signed_in_admin(&app, &mut c).await;
    let (organizer, organizer_tokens) = signed_in(&mut c).await;
    let (staff, staff_tokens) = signed_in(&mut c).await;
    let (fan, fan_tokens) = signed_in(&mut c).await;

    // A plain user cannot grant anything, not even to themselves.
    assert_eq!(
        code(
            c.grant_membership(authed(grant(festival_a, &fan.id, pb::Role::Organizer), &fan_tokens.access_token)).await
        ),
        "ERR_3002"
    );

    // The admin makes someone organizer of festival A…
    let m = c
        .grant_membership(authed(grant(festival_a, &organizer.id, pb::Role::Organizer), &admin.access_token))
        .await
        .expect("admin grants")
        .into_inner();
    assert_eq!(
        (m.role, m.granted_by.as_str()),
        (pb::Role::Organizer as i32, admin.user.as_ref().map_or("", |u| u.id.as_str()))
    );

    // …who can now staff festival A (with the access token minted before the grant:
    // identity reads roles fresh from its database)…
    c.grant_membership(authed(grant(festival_a, &staff.id, pb::Role::Staff), &organizer_tokens.access_token))
        .await
        .expect("organizer grants at their festival");
    // …but has no power at festival B.
    assert_eq!(
        code(
            c.grant_membership(authed(grant(festival_b, &staff.id, pb::Role::Staff), &organizer_tokens.access_token))
                .await
        ),
        "ERR_3002"
    );
    // Staff cannot grant at their own festival either.
    assert_eq!(
        code(
            c.grant_membership(authed(grant(festival_a, &fan.id, pb::Role::Cashier), &staff_tokens.access_token)).await
        ),
        "ERR_3001"
    );
    assert_eq!(count(&app, "memberships").await, 2);

    // The staff member's next access token carries the membership.
    let refreshed = c
        .refresh(pb::RefreshRequest { refresh_token: staff_tokens.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    let me = refreshed.user.expect("user");
    assert_eq!(me.memberships.len(), 1);
    assert_eq!(
        (me.memberships[0].festival_id.clone(), me.memberships[0].role),
        (festival_a.to_string(), pb::Role::Staff as i32)
    );

    let granted = app.last_event::<pb::MembershipGranted>().await;
    assert_eq!((granted.user_id.as_str(), granted.role), (staff.id.as_str(), pb::Role::Staff as i32));
}

#[tokio::test]
async fn organizers_list_and_revoke_their_roster() {
    let app = spawn().await;
    let mut c = client(&app);
    let festival = Uuid::now_v7();
    let admin = signed_in_admin(&app, &mut c).await;

    let mut members = Vec::new();
    for _ in 0..5 {
        let (user, _) = signed_in(&mut c).await;
        c.grant_membership(authed(grant(festival, &user.id, pb::Role::Security), &admin.access_token))
            .await
            .expect("grant");
        members.push(user.id);
    }
    // Granting a role already held is idempotent.
    c.grant_membership(authed(grant(festival, &members[0], pb::Role::Security), &admin.access_token))
        .await
        .expect("again");

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .list_memberships(authed(
                pb::ListMembershipsRequest {
                    festival_id: festival.to_string(),
                    page_size: 2,
                    page_token: page_token.clone(),
                },
                &admin.access_token,
            ))
            .await
            .expect("list")
            .into_inner();
        assert!(page.memberships.len() <= 2);
        seen.extend(page.memberships.into_iter().map(|m| m.user_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    members.sort();
    assert_eq!(seen, members, "every member once, in order");

    let revoke = pb::RevokeMembershipRequest {
        festival_id: festival.to_string(),
        user_id: members[0].clone(),
        role: pb::Role::Security as i32,
    };
    c.revoke_membership(authed(revoke.clone(), &admin.access_token)).await.expect("revoke");
    assert_eq!(code(c.revoke_membership(authed(revoke, &admin.access_token)).await), "ERR_4000");
    assert_eq!(count(&app, "memberships").await, 4);
    let revoked = app.last_event::<pb::MembershipRevoked>().await;
    assert_eq!(revoked.user_id, members[0]);
}

#[tokio::test]
async fn bad_membership_requests_are_refused_and_write_nothing() {
    let app = spawn().await;
    let mut c = client(&app);
    let festival = Uuid::now_v7();
    let admin = signed_in_admin(&app, &mut c).await;
    let (user, _) = signed_in(&mut c).await;
    let token = &admin.access_token;

    assert_eq!(code(c.grant_membership(authed(pb::GrantMembershipRequest::default(), token)).await), "ERR_1001");
    assert_eq!(
        code(c.grant_membership(authed(grant(festival, "not-a-uuid", pb::Role::Staff), token)).await),
        "ERR_1004"
    );
    assert_eq!(code(c.grant_membership(authed(grant(festival, &user.id, pb::Role::Admin), token)).await), "ERR_3003");
    assert_eq!(code(c.grant_membership(authed(grant(festival, &user.id, pb::Role::User), token)).await), "ERR_3003");
    let unknown_role =
        pb::GrantMembershipRequest { festival_id: festival.to_string(), user_id: user.id.clone(), role: 42 };
    assert_eq!(code(c.grant_membership(authed(unknown_role, token)).await), "ERR_1003");
    assert_eq!(
        code(c.grant_membership(authed(grant(festival, &Uuid::now_v7().to_string(), pb::Role::Staff), token)).await),
        "ERR_4000"
    );
    let bad_page =
        pb::ListMembershipsRequest { festival_id: festival.to_string(), page_size: 10, page_token: "forged".into() };
    assert_eq!(code(c.list_memberships(authed(bad_page, token)).await), "ERR_1005");
    assert_eq!(count(&app, "memberships").await, 0);
}

#[tokio::test]
async fn a_festival_creator_becomes_its_organizer_through_program_s_event() {
    let app = spawn().await;
    let mut c = client(&app);
    let (user, _) = signed_in(&mut c).await;
    let festival_id = uuid::Uuid::now_v7().to_string();
    // What program publishes when the festival is created.
    let created = festival_proto::program::v1::FestivalCreated {
        festival_id: festival_id.clone(),
        slug: "event-driven".into(),
        created_by: user.id.clone(),
        ..Default::default()
    };
    festival_testkit::publish_event(&app.naming(), &created).await;
    let granted = festival_testkit::eventually(std::time::Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from memberships where festival_id = $1::uuid and user_id = $2::uuid and role = 'ORGANIZER'",
        )
        .bind(&festival_id)
        .bind(&user.id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
        n == 1
    })
    .await;
    assert!(granted, "identity consumed festival.created and granted ORGANIZER");
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where consumer = 'identity-festival-created'")
        .fetch_one(&app.pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 1, "the event was recorded in identity's inbox once");
    let announced = app.last_event::<pb::MembershipGranted>().await;
    assert_eq!((announced.festival_id, announced.user_id), (festival_id, user.id));
}
