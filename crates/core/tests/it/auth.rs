//! Users, sign-in, sessions, tokens and the audit trail they leave.

use chrono::Duration;
use shuxiang_core::Db;
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::{self, GrantInput, NewUser, Principal, Role, UserUpdate};

async fn admin(db: &Db) -> Principal {
    auth::ensure_admin(db, Some("admin password 1")).await.unwrap();
    auth::login(db, "admin", "admin password 1", "127.0.0.1", Duration::hours(1))
        .await
        .unwrap()
        .principal
}

fn new_user(name: &str, role: &str, scope: &str) -> NewUser {
    NewUser {
        username: name.into(),
        password: "a long secret phrase".into(),
        display_name: format!("{name} 测试"),
        phone: Some("13812345678".into()),
        roles: vec![GrantInput {
            role: role.into(),
            scope: scope.into(),
        }],
    }
}

shuxiang_core::db_test!(async fn bootstrap_admin_is_created_once(db) {
    let generated = auth::ensure_admin(&db, None).await.unwrap().expect("first start generates a password");
    assert!(generated.len() >= 20);
    assert_eq!(auth::ensure_admin(&db, None).await.unwrap(), None);
    let signed = auth::login(&db, "admin", &generated, "127.0.0.1", Duration::hours(1)).await.unwrap();
    assert!(signed.principal.is_national_admin());
});

shuxiang_core::db_test!(async fn users_are_created_with_scoped_roles(db) {
    let a = admin(&db).await;
    let actor = a.actor(Some("10.0.0.1".into()));
    let u = auth::create_user(&db, &a, &actor, new_user("donghu", "official", "360102")).await.unwrap();
    assert_eq!(u.roles[0].scope.to_string(), "360102");
    // Padded scope codes are stored in their natural form.
    let u2 = auth::create_user(&db, &a, &actor, new_user("nanchang", "official", "360100")).await.unwrap();
    assert_eq!(u2.roles[0].scope.to_string(), "3601");

    let dup = auth::create_user(&db, &a, &actor, new_user("donghu", "farmer", "360102")).await.unwrap_err();
    assert_eq!(dup.code(), "username_taken");
    let bad_scope = auth::create_user(&db, &a, &actor, new_user("ghost", "official", "369999")).await.unwrap_err();
    assert_eq!(bad_scope.code(), "unknown_region");
    let bad_role = auth::create_user(&db, &a, &actor, new_user("ghost", "mayor", "36")).await.unwrap_err();
    assert_eq!(bad_role.code(), "invalid_role");
    let mut weak = new_user("ghost", "farmer", "36");
    weak.password = "short".into();
    assert_eq!(auth::create_user(&db, &a, &actor, weak).await.unwrap_err().code(), "weak_password");

    // A county official may not create users, and sees only users inside the county.
    let official = auth::login(&db, "donghu", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap().principal;
    assert_eq!(auth::create_user(&db, &official, &actor, new_user("x1", "farmer", "360102")).await.unwrap_err().code(), "forbidden");
    let seen: Vec<String> = auth::list_users(&db, &official).await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(seen, ["donghu"]);
    // The national admin sees everyone with full phone numbers; the official's own phone is shown to them.
    let all = auth::list_users(&db, &a).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().any(|u| u.phone.as_deref() == Some("13812345678")));

    // A city-scoped admin may grant only inside the city.
    let city_admin = auth::create_user(&db, &a, &actor, new_user("ncadmin", "admin", "3601")).await.unwrap();
    let ca = auth::login(&db, "ncadmin", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap().principal;
    assert_eq!(ca.user_id, city_admin.id);
    assert!(auth::create_user(&db, &ca, &actor, new_user("farmer1", "farmer", "360102002001")).await.is_ok());
    assert_eq!(auth::create_user(&db, &ca, &actor, new_user("farmer2", "farmer", "3602")).await.unwrap_err().code(), "forbidden");
    assert_eq!(auth::update_user(&db, &ca, &actor, a.user_id, UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap_err().code(), "forbidden");
    // The county official now also sees the farmer of a village in the county,
    // with the phone masked, since officials do not administer users.
    let listed = auth::list_users(&db, &official).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["donghu", "farmer1"]);
    assert_eq!(listed[0].phone.as_deref(), Some("13812345678"));
    assert_eq!(listed[1].phone.as_deref(), Some("138****5678"));
    assert_eq!(auth::get_user(&db, &official, city_admin.id).await.unwrap_err().code(), "forbidden");
});

shuxiang_core::db_test!(async fn sessions_tokens_and_revocation(db) {
    let a = admin(&db).await;
    let actor = a.actor(None);
    auth::create_user(&db, &a, &actor, new_user("staff", "village_staff", "360102002001")).await.unwrap();
    let s = auth::login(&db, "staff", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap();
    assert!(s.token.starts_with("sxs_"));
    let p = auth::authenticate(&db, &s.token).await.unwrap().unwrap();
    assert_eq!(p.username, "staff");
    assert!(p.can(&[Role::VillageStaff], &"360102002001".parse_code()));

    let (tok, secret) = auth::create_token(&db, &p, &p.actor(None), "station sync", Some(30)).await.unwrap();
    assert!(secret.starts_with("sxt_") && secret.starts_with(&tok.prefix));
    assert_eq!(auth::authenticate(&db, &secret).await.unwrap().unwrap().user_id, p.user_id);
    assert_eq!(auth::list_tokens(&db, &p).await.unwrap().len(), 1);
    // Someone else's token cannot be revoked by a non-admin.
    auth::create_user(&db, &a, &actor, new_user("other", "farmer", "360102002001")).await.unwrap();
    let other = auth::login(&db, "other", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap().principal;
    assert_eq!(auth::revoke_token(&db, &other, &other.actor(None), tok.id).await.unwrap_err().code(), "forbidden");
    assert!(auth::list_tokens(&db, &other).await.unwrap().is_empty());
    auth::revoke_token(&db, &p, &p.actor(None), tok.id).await.unwrap();
    assert!(auth::authenticate(&db, &secret).await.unwrap().is_none());

    auth::logout(&db, &p, &s.token, None).await.unwrap();
    assert!(auth::authenticate(&db, &s.token).await.unwrap().is_none());
    assert!(auth::authenticate(&db, "sxs_forged").await.unwrap().is_none());
    assert!(auth::authenticate(&db, "garbage").await.unwrap().is_none());

    // Expired sessions do not authenticate.
    let short = auth::login(&db, "staff", "a long secret phrase", "127.0.0.1", Duration::seconds(-1)).await.unwrap();
    assert!(auth::authenticate(&db, &short.token).await.unwrap().is_none());
});

shuxiang_core::db_test!(async fn disabling_a_user_ends_their_sessions(db) {
    let a = admin(&db).await;
    let actor = a.actor(None);
    let u = auth::create_user(&db, &a, &actor, new_user("leaver", "farmer", "36")).await.unwrap();
    let s = auth::login(&db, "leaver", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap();
    auth::update_user(&db, &a, &actor, u.id, UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(auth::authenticate(&db, &s.token).await.unwrap().is_none());
    assert_eq!(auth::login(&db, "leaver", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.err().unwrap().code(), "bad_credentials");
    let lock = auth::update_user(&db, &a, &actor, a.user_id, UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap_err();
    assert_eq!(lock.code(), "self_lockout");
});

shuxiang_core::db_test!(async fn sign_in_is_rate_limited_and_audited(db) {
    let a = admin(&db).await;
    auth::create_user(&db, &a, &a.actor(None), new_user("target", "farmer", "36")).await.unwrap();
    for _ in 0..5 {
        let e = auth::login(&db, "target", "wrong password!!", "192.0.2.7", Duration::hours(1)).await.err().unwrap();
        assert_eq!(e.code(), "bad_credentials");
    }
    // Even the right password is refused while the account is throttled.
    let e = auth::login(&db, "target", "a long secret phrase", "192.0.2.7", Duration::hours(1)).await.err().unwrap();
    assert_eq!(e.code(), "too_many_attempts");
    // Unknown users fail the same way as wrong passwords.
    assert_eq!(auth::login(&db, "nobody", "whatever123", "192.0.2.8", Duration::hours(1)).await.err().unwrap().code(), "bad_credentials");

    let log = audit::list(&db, None, &AuditQuery { action: Some("auth.login_failed".into()), limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(log.len(), 6);
    assert!(log.iter().any(|e| e.ip.as_deref() == Some("192.0.2.7") && e.actor == "target"));
    let ok = audit::list(&db, None, &AuditQuery { action: Some("auth.login".into()), limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(ok.len(), 1);
});

shuxiang_core::db_test!(async fn audit_log_is_scoped_by_region(db) {
    let a = admin(&db).await;
    let actor = a.actor(Some("10.1.1.1".into()));
    auth::create_user(&db, &a, &actor, new_user("east", "official", "360102")).await.unwrap();
    auth::create_user(&db, &a, &actor, new_user("west", "official", "360103")).await.unwrap();
    let east = auth::login(&db, "east", "a long secret phrase", "127.0.0.1", Duration::hours(1)).await.unwrap().principal;
    let scopes: Vec<_> = east.grants.iter().map(|g| g.scope.clone()).collect();
    let seen = audit::list(&db, Some(&scopes), &AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|e| e.region.as_deref().is_some_and(|r| r.starts_with("360102"))), "{seen:?}");
    assert!(seen.iter().any(|e| e.action == "user.create" && e.ip.as_deref() == Some("10.1.1.1")));
    let all = audit::list(&db, None, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert!(all.len() > seen.len());
});

trait ParseCode {
    fn parse_code(&self) -> shuxiang_core::RegionCode;
}

impl ParseCode for str {
    fn parse_code(&self) -> shuxiang_core::RegionCode {
        shuxiang_core::RegionCode::parse(self).unwrap()
    }
}
