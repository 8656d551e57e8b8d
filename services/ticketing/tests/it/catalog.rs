//! Categories, quotas and availability; which festivals sell.

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;

use crate::helpers::*;

#[tokio::test]
async fn availability_is_the_minimum_over_a_categorys_quotas_and_hidden_categories_stay_hidden() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let category = |name: &str, visibility: pb::Visibility| pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: name.into(),
        price_minor: 12_900,
        visibility: visibility as i32,
        ..Default::default()
    };
    let ga =
        c.create_category(authed(category("GA", pb::Visibility::Public), &f.organizer)).await.expect("ga").into_inner();
    let vip = c
        .create_category(authed(category("VIP", pb::Visibility::Public), &f.organizer))
        .await
        .expect("vip")
        .into_inner();
    let crew = c
        .create_category(authed(category("Crew", pb::Visibility::Hidden), &f.organizer))
        .await
        .expect("crew")
        .into_inner();
    assert_eq!(
        (ga.currency.as_str(), ga.min_per_order, ga.max_per_order),
        ("EUR", 1, 10),
        "festival currency, defaults"
    );
    let quota = |name: &str, size: i64, ids: Vec<String>| pb::CreateQuotaRequest {
        festival_id: f.id.to_string(),
        name: name.into(),
        size,
        category_ids: ids,
    };
    c.create_quota(authed(quota("Weekend", 100, vec![ga.id.clone(), vip.id.clone(), crew.id.clone()]), &f.organizer))
        .await
        .expect("weekend");
    let area = c
        .create_quota(authed(quota("VIP area", 10, vec![vip.id.clone()]), &f.organizer))
        .await
        .expect("vip area")
        .into_inner();
    assert_eq!((area.size, area.held, area.sold, area.available), (10, 0, 0, 10));

    let public = c
        .get_availability(pb::GetAvailabilityRequest { festival_id: f.id.to_string(), ..Default::default() })
        .await
        .expect("availability")
        .into_inner();
    let seen: Vec<(String, i64, bool)> =
        public.categories.iter().map(|a| (a.category_id.clone(), a.available, a.on_sale)).collect();
    assert_eq!(seen, vec![(ga.id.clone(), 100, true), (vip.id.clone(), 10, true)], "no hidden category for the public");
    let listed = c
        .list_categories(authed(
            pb::ListCategoriesRequest { festival_id: f.id.to_string(), ..Default::default() },
            &f.organizer,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.categories.len(), 3, "organizers see hidden categories");

    // Taking VIP tickets takes them from both of its quotas.
    let (_, fan) = env.issuer.user();
    c.create_hold(authed(hold_request(&f, &[(&vip.id, 4)]), &fan)).await.expect("hold");
    let after = c
        .get_availability(pb::GetAvailabilityRequest { festival_id: f.id.to_string(), ..Default::default() })
        .await
        .expect("availability")
        .into_inner();
    assert_eq!(after.categories.iter().map(|a| a.available).collect::<Vec<_>>(), vec![96, 6]);
    assert_eq!(env.quotas(&f).await, vec![("VIP area".into(), 10, 4, 0), ("Weekend".into(), 100, 4, 0)]);
}

#[tokio::test]
async fn organizers_of_another_festival_and_bad_definitions_get_catalogued_codes() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let other = env.festival(program::FestivalStatus::Published).await;
    let request = |name: &str, price_minor: i64| pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: name.into(),
        price_minor,
        ..Default::default()
    };
    assert_eq!(code(c.create_category(authed(request("GA", 100), &other.organizer)).await), "ERR_3002");
    assert_eq!(code(c.create_category(authed(request("GA", 100), &env.member(&f, Role::Staff))).await), "ERR_3001");
    assert_eq!(code(c.create_category(request("GA", 100)).await), "ERR_2000");
    assert_eq!(code(c.create_category(authed(request("GA", -1), &f.organizer)).await), "ERR_5006");
    assert_eq!(code(c.create_category(authed(request("", 100), &f.organizer)).await), "ERR_1001");
    let ga = c.create_category(authed(request("GA", 100), &f.organizer)).await.expect("ga").into_inner();
    assert_eq!(code(c.create_category(authed(request("GA", 100), &f.organizer)).await), "ERR_4001");
    let window = pb::CreateCategoryRequest {
        sale_start_time: Some(prost_types::Timestamp { seconds: 2_000_000_000, nanos: 0 }),
        sale_end_time: Some(prost_types::Timestamp { seconds: 1_900_000_000, nanos: 0 }),
        ..request("Backwards", 100)
    };
    assert_eq!(code(c.create_category(authed(window, &f.organizer)).await), "ERR_1000");

    let quota = |size: i64, ids: Vec<String>| pb::CreateQuotaRequest {
        festival_id: f.id.to_string(),
        name: "Q".into(),
        size,
        category_ids: ids,
    };
    assert_eq!(code(c.create_quota(authed(quota(0, vec![ga.id.clone()]), &f.organizer)).await), "ERR_1000");
    assert_eq!(code(c.create_quota(authed(quota(10, vec![]), &f.organizer)).await), "ERR_1001");
    let theirs = env.category(&other, "Theirs", 100, 5).await;
    assert_eq!(code(c.create_quota(authed(quota(10, vec![theirs.id]), &f.organizer)).await), "ERR_4000");
    assert_eq!(code(c.create_quota(authed(quota(10, vec!["not-a-uuid".into()]), &f.organizer)).await), "ERR_1004");
    assert_eq!(env.quotas(&f).await, vec![], "nothing half-written");
}

#[tokio::test]
async fn sales_follow_the_festivals_status_and_a_cancellation_stops_them_at_once() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Draft).await;
    let free = env.category(&f, "Free", 0, 50).await;
    let (_, fan) = env.issuer.user();
    let availability = || pb::GetAvailabilityRequest { festival_id: f.id.to_string(), ..Default::default() };
    assert_eq!(code(c.get_availability(availability()).await), "ERR_4000", "a draft's catalogue is not public");
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &fan)).await), "ERR_7001");

    env.announce(f.id, program::FestivalStatus::Published, 2).await;
    let hold = c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &fan)).await.expect("on sale").into_inner();

    env.announce(f.id, program::FestivalStatus::Cancelled, 3).await;
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &fan)).await), "ERR_7001");
    assert_eq!(code(c.checkout_hold(authed(checkout(&hold), &fan)).await), "ERR_7001", "held tickets too");

    // An older event arriving late does not put the festival back on sale.
    let late = program::FestivalStatusChanged {
        festival_id: f.id.to_string(),
        to: program::FestivalStatus::Published as i32,
        facts: Some(program::FestivalFacts {
            name: "Festival".into(),
            time_zone: "Europe/Paris".into(),
            currency: "EUR".into(),
            status: program::FestivalStatus::Published as i32,
            version: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    festival_testkit::publish_event(&env.app.naming(), &late).await;
    env.app.assert_outbox_drained().await;
    let marker = env.festival(program::FestivalStatus::Published).await; // processed after the late event
    drop(marker);
    let stored: (i64, String) = sqlx::query_as("select version, status from festivals where id = $1")
        .bind(f.id)
        .fetch_one(&env.app.pool)
        .await
        .expect("festival");
    assert_eq!(stored, (3, "CANCELLED".to_owned()), "the late event was applied and changed nothing");
    assert_eq!(code(c.create_hold(authed(hold_request(&f, &[(&free.id, 1)]), &fan)).await), "ERR_7001");
}

#[tokio::test]
async fn a_deletion_seen_before_the_creation_keeps_the_festival_off_sale() {
    let env = spawn().await;
    let id = uuid::Uuid::now_v7();
    festival_testkit::publish_event(&env.app.naming(), &program::FestivalDeleted { festival_id: id.to_string() }).await;
    let pool = env.app.pool.clone();
    let tombstone = festival_testkit::eventually(std::time::Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select exists(select 1 from festivals where id = $1 and deleted)")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await;
    assert!(tombstone, "the deletion was recorded");
    let created = program::FestivalCreated {
        festival_id: id.to_string(),
        facts: Some(program::FestivalFacts {
            name: "Gone".into(),
            time_zone: "UTC".into(),
            currency: "EUR".into(),
            status: program::FestivalStatus::Published as i32,
            version: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    festival_testkit::publish_event(&env.app.naming(), &created).await;
    // A later creation on the same consumer: once it is applied, so is the one above.
    let marker = uuid::Uuid::now_v7();
    let later = program::FestivalCreated { festival_id: marker.to_string(), ..created.clone() };
    festival_testkit::publish_event(&env.app.naming(), &later).await;
    let pool = env.app.pool.clone();
    let applied = festival_testkit::eventually(std::time::Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select exists(select 1 from festivals where id = $1)")
                .bind(marker)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await;
    assert!(applied);
    let mut c = env.client();
    assert_eq!(
        code(
            c.get_availability(pb::GetAvailabilityRequest { festival_id: id.to_string(), ..Default::default() }).await
        ),
        "ERR_4000"
    );
}

#[tokio::test]
async fn a_hidden_category_opens_to_whoever_gives_its_access_code() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let category = |name: &str, visibility: pb::Visibility, code: &str| pb::CreateCategoryRequest {
        festival_id: f.id.to_string(),
        name: name.into(),
        visibility: visibility as i32,
        access_code: code.into(),
        ..Default::default()
    };
    assert_eq!(
        code(c.create_category(authed(category("Open", pb::Visibility::Public, "PRESS-2027"), &f.organizer)).await),
        "ERR_1000"
    );
    assert_eq!(
        code(c.create_category(authed(category("Short", pb::Visibility::Hidden, "abc"), &f.organizer)).await),
        "ERR_1000"
    );
    let press = c
        .create_category(authed(category("Press", pb::Visibility::Hidden, "PRESS-2027"), &f.organizer))
        .await
        .expect("hidden category")
        .into_inner();
    assert!(press.has_access_code);
    c.create_quota(authed(
        pb::CreateQuotaRequest {
            festival_id: f.id.to_string(),
            name: "Press capacity".into(),
            size: 5,
            category_ids: vec![press.id.clone()],
        },
        &f.organizer,
    ))
    .await
    .expect("quota");
    let listed = |code: &str| pb::ListCategoriesRequest { festival_id: f.id.to_string(), access_code: code.into() };
    let names = |r: pb::ListCategoriesResponse| r.categories.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert!(names(c.list_categories(listed("")).await.expect("list").into_inner()).is_empty());
    assert!(names(c.list_categories(listed("PRESS-2028")).await.expect("list").into_inner()).is_empty());
    assert_eq!(names(c.list_categories(listed(" press-2027 ")).await.expect("list").into_inner()), vec!["Press"]);
    let availability = c
        .get_availability(pb::GetAvailabilityRequest {
            festival_id: f.id.to_string(),
            access_code: "press-2027".into(),
        })
        .await
        .expect("availability")
        .into_inner();
    assert_eq!(
        availability.categories.iter().map(|c| (c.category_id.clone(), c.available)).collect::<Vec<_>>(),
        vec![(press.id.clone(), 5)]
    );

    let (_, fan) = env.issuer.user();
    let mut hold = hold_request(&f, &[(&press.id, 1)]);
    assert_eq!(code(c.create_hold(authed(hold.clone(), &fan)).await), "ERR_4000", "hidden without the code");
    hold.access_code = "Press-2027".into();
    hold.idempotency_key = format!("with-code-{}", uuid::Uuid::now_v7());
    let held = c.create_hold(authed(hold, &fan)).await.expect("held with the code").into_inner();
    assert_eq!(held.items[0].category_id, press.id);
}
