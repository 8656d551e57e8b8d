//! The security audit log: what is recorded, who reads it, and that nobody rewrites it.

use ed25519_dalek::SigningKey;
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn list(festival: Option<Uuid>) -> pb::ListAuditEntriesRequest {
    pb::ListAuditEntriesRequest {
        festival_id: festival.map(|f| f.to_string()).unwrap_or_default(),
        ..Default::default()
    }
}

async fn entries(c: &mut Client, festival: Option<Uuid>, token: &str) -> Vec<pb::AuditEntry> {
    c.list_audit_entries(authed(list(festival), token)).await.expect("audit entries").into_inner().entries
}

#[tokio::test]
async fn sign_ins_role_grants_and_devices_are_recorded_and_read_by_their_festivals_organisers() {
    let app = spawn().await;
    let mut c = client(&app);
    let email = new_email();
    let fan = register(&mut c, &email).await;
    // A wrong password for a real account, one for nobody's, then the right one.
    for (who, password) in [(email.as_str(), "not the password at all"), ("nobody@example.org", PASSWORD)] {
        let attempt = pb::LoginRequest { email: who.into(), password: password.into(), ..Default::default() };
        assert_eq!(code(c.login(attempt).await), "ERR_2001");
    }
    login(&mut c, &email).await;

    let (festival, organizer) = organiser(&app, &mut c).await;
    let (other_festival, other_organizer) = organiser(&app, &mut c).await;
    let grant = pb::GrantMembershipRequest {
        festival_id: festival.to_string(),
        user_id: fan.id.clone(),
        role: pb::Role::Security as i32,
    };
    c.grant_membership(authed(grant, &organizer)).await.expect("grant");
    let device = c
        .create_device(authed(
            pb::CreateDeviceRequest {
                festival_id: festival.to_string(),
                name: "North gate".into(),
                gate: "north".into(),
                level: pb::DeviceLevel::Steward as i32,
            },
            &organizer,
        ))
        .await
        .expect("device")
        .into_inner();
    let key = SigningKey::from_bytes(&[7; 32]);
    let paired = pb::PairDeviceRequest {
        pairing_code: device.pairing_code.clone(),
        public_key: base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.verifying_key().to_bytes(),
        ),
    };
    c.pair_device(paired).await.expect("pair");
    let device_id = device.device.expect("device").id;
    let revoke = pb::RevokeDeviceRequest { festival_id: festival.to_string(), device_id: device_id.clone() };
    c.revoke_device(authed(revoke, &organizer)).await.expect("revoke");

    // The festival's organiser reads its entries, newest first; only its own.
    let seen = entries(&mut c, Some(festival), &organizer).await;
    let actions: Vec<&str> = seen.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["DEVICE_REVOKED", "DEVICE_PAIRED", "DEVICE_CREATED", "ROLE_GRANTED", "ROLE_GRANTED"]);
    assert!(seen.iter().all(|e| e.festival_id == festival.to_string()));
    let granted = &seen[3];
    assert_eq!((granted.subject_id.as_str(), granted.detail.as_str()), (fan.id.as_str(), "ROLE_SECURITY"));
    assert_eq!(seen[0].detail, format!("device {device_id}"));
    // Another festival's organiser sees nothing of it; nobody but admins reads it all.
    assert_eq!(code(c.list_audit_entries(authed(list(Some(festival)), &other_organizer)).await), "ERR_3002");
    assert_eq!(code(c.list_audit_entries(authed(list(None), &organizer)).await), "ERR_1001");
    assert_eq!(entries(&mut c, Some(other_festival), &other_organizer).await.len(), 1, "its own grant only");

    // Admins read every entry: the sign-ins and failures too, minimised.
    let admin = signed_in_admin(&app, &mut c).await;
    let all = entries(&mut c, None, &admin.access_token).await;
    let of_fan: Vec<(&str, &str)> = all
        .iter()
        .filter(|e| e.subject_id == fan.id && e.action.starts_with("SIGN_IN"))
        .map(|e| (e.action.as_str(), e.ip_prefix.as_str()))
        .collect();
    assert_eq!(of_fan, vec![("SIGN_IN", "127.0.0.0/24"), ("SIGN_IN_FAILED", "127.0.0.0/24")]);
    let nobody = all.iter().filter(|e| e.action == "SIGN_IN_FAILED" && e.subject_id.is_empty()).count();
    assert_eq!(nobody, 1, "a failure for no account is recorded without one");
    let text = format!("{all:?}");
    assert!(!text.contains(&email) && !text.contains("nobody@example.org"), "no email is kept");

    // Append-only, whatever the application's role tries.
    for sql in ["update security_audit set detail = 'x'", "delete from security_audit", "truncate security_audit"] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&app.pool).await;
        assert!(refused.is_err(), "{sql} went through");
    }
    assert_eq!(entries(&mut c, None, &admin.access_token).await.len(), all.len(), "nothing changed");
    app.stop().await;
}
