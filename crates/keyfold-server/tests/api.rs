//! End-to-end API tests: a real server on a loopback port, the Rust SDK and hand-built
//! requests, on SQLite and PostgreSQL. Every refusal also checks that nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, Harness};
use keyfold_sdk::{Client, Error, KeySigner};
use keyfold_types::auth::{HttpMethod, NewCredential, RegisterBody};
use keyfold_types::users::{CreatableUserKind, CreateUserBody, ListUsersQuery, UpdateUserBody};
use reqwest::StatusCode;
use serde_json::{Value, json};

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::start(super::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Harness::start(super::Backend::Postgres).await).await;
                }
            )*
        }
    };
}

both_backends!(
    users_lifecycle,
    replayed_user_action_is_refused,
    user_action_must_match_method_path_and_body,
    user_action_signed_by_another_key_is_refused,
    racing_one_user_action_token_exactly_one_wins,
    logout_revokes_tokens,
    registration_then_login_then_no_permissions,
    registration_codes_resist_guessing_and_replay,
    deactivated_and_deleted_users_are_locked_out,
    expired_challenges_and_actions_are_refused,
    malformed_input_gets_clear_4xx,
    external_id_makes_create_idempotent,
    jwt_key_rotation_keeps_sessions,
);

fn new_user(email: &str) -> CreateUserBody {
    CreateUserBody {
        email: email.into(),
        kind: CreatableUserKind::CustomerEmployee,
        public_key: None,
        external_id: None,
        is_sso_required: None,
    }
}

async fn user_ids(c: &Client) -> Vec<String> {
    let mut ids: Vec<String> = c
        .list_users(&ListUsersQuery {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| format!("{}:{}:{}", u.user_id, u.is_active, u.is_sso_required))
        .collect();
    ids.sort();
    ids
}

/// Sends `method path` with `body` and an optional user action token, as raw HTTP.
async fn raw(
    h: &Harness,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
    ua: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = h
        .http()
        .request(method.parse().unwrap(), format!("{}{}", h.url, path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(ua) = ua {
        req = req.header("x-dfns-useraction", ua);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body {status}: {text}"));
    if !status.is_success() {
        assert!(v["error"]["message"].is_string(), "error shape: {v}");
    }
    (status, v)
}

async fn users_lifecycle(h: Harness) {
    let root = h.root().await;
    let before = root.list_users(&ListUsersQuery::default()).await.unwrap();
    assert_eq!(before.items.len(), 1);
    assert_eq!(before.items[0].user_id, h.root_id);
    assert!(
        before.items[0]
            .permissions
            .as_ref()
            .unwrap()
            .contains(&"Auth:Users:Create".to_string())
    );

    let u = root
        .create_user(&new_user("Alice@Example.com"))
        .await
        .unwrap();
    assert_eq!(u.username, "alice@example.com");
    assert!(u.user_id.starts_with("us-"));
    assert!(u.is_active && !u.is_registered && !u.is_service_account);
    assert_eq!(u.org_id, h.org_id);
    assert_eq!(
        root.get_user(&u.user_id).await.unwrap().username,
        u.username
    );

    // Duplicate email: 409.
    let dup = root
        .create_user(&new_user("alice@example.com"))
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(409));

    let u = root
        .update_user(
            &u.user_id,
            &UpdateUserBody {
                is_sso_required: true,
            },
        )
        .await
        .unwrap();
    assert!(u.is_sso_required);
    assert!(!root.deactivate_user(&u.user_id).await.unwrap().is_active);
    assert!(root.activate_user(&u.user_id).await.unwrap().is_active);

    // Pagination.
    for i in 0..4 {
        root.create_user(&new_user(&format!("p{i}@example.com")))
            .await
            .unwrap();
    }
    let mut seen = vec![];
    let mut token = None;
    loop {
        let page = root
            .list_users(&ListUsersQuery {
                limit: Some(2),
                pagination_token: token.clone(),
                kind: None,
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|u| u.user_id));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 6);

    let deleted = root.delete_user(&u.user_id).await.unwrap();
    assert!(!deleted.is_active);
    assert_eq!(
        root.get_user(&u.user_id).await.unwrap_err().status(),
        Some(404)
    );
    // You cannot lock yourself out.
    assert_eq!(
        root.deactivate_user(&h.root_id).await.unwrap_err().status(),
        Some(400)
    );
    assert_eq!(
        root.delete_user(&h.root_id).await.unwrap_err().status(),
        Some(400)
    );
    // Unknown and malformed ids: 404.
    assert_eq!(
        root.get_user("us-00000-00000-0000000000000000")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        root.get_user("nonsense").await.unwrap_err().status(),
        Some(404)
    );
}

async fn replayed_user_action_is_refused(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let body = serde_json::to_string(&new_user("replay@example.com")).unwrap();
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", &body)
        .await
        .unwrap();
    let (s1, _) = raw(&h, &token, "POST", "/auth/users", &body, Some(&ua)).await;
    assert_eq!(s1, StatusCode::OK);
    let before = user_ids(&root).await;
    let (s2, v) = raw(&h, &token, "POST", "/auth/users", &body, Some(&ua)).await;
    assert_eq!(s2, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(user_ids(&root).await, before);
    // No header at all: 401, nothing written.
    let other = serde_json::to_string(&new_user("noheader@example.com")).unwrap();
    let (s3, _) = raw(&h, &token, "POST", "/auth/users", &other, None).await;
    assert_eq!(s3, StatusCode::UNAUTHORIZED);
    let (s4, _) = raw(
        &h,
        &token,
        "POST",
        "/auth/users",
        &other,
        Some("kfua_garbage"),
    )
    .await;
    assert_eq!(s4, StatusCode::UNAUTHORIZED);
    assert_eq!(user_ids(&root).await, before);
}

async fn user_action_must_match_method_path_and_body(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let target = root
        .create_user(&new_user("target@example.com"))
        .await
        .unwrap();
    let before = user_ids(&root).await;

    // Body changed after signing.
    let signed = serde_json::to_string(&new_user("signed@example.com")).unwrap();
    let sent = serde_json::to_string(&new_user("evil@example.com")).unwrap();
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", &signed)
        .await
        .unwrap();
    let (s, v) = raw(&h, &token, "POST", "/auth/users", &sent, Some(&ua)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // Reordered fields are a different body (only spelling — whitespace, escapes — may differ).
    let ordered = r#"{"email":"signed@example.com","kind":"CustomerEmployee"}"#;
    let reordered = r#"{"kind":"CustomerEmployee","email":"signed@example.com"}"#;
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", ordered)
        .await
        .unwrap();
    let (s, _) = raw(&h, &token, "POST", "/auth/users", reordered, Some(&ua)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Signed for another path (deactivate someone else, used to deactivate target).
    let path_a = format!("/auth/users/{}/deactivate", h.root_id);
    let path_b = format!("/auth/users/{}/deactivate", target.user_id);
    let ua = root
        .user_action(HttpMethod::Put, &path_a, "")
        .await
        .unwrap();
    let (s, _) = raw(&h, &token, "PUT", &path_b, "", Some(&ua)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Signed for another method.
    let path = format!("/auth/users/{}", target.user_id);
    let ua = root
        .user_action(HttpMethod::Put, &path, r#"{"isSSORequired":true}"#)
        .await
        .unwrap();
    let (s, _) = raw(
        &h,
        &token,
        "DELETE",
        &path,
        r#"{"isSSORequired":true}"#,
        Some(&ua),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(user_ids(&root).await, before);

    // Spelling is not meaning: a body signed with \u-escapes and sent as raw UTF-8 (what the
    // Python SDK does) is the same request.
    let signed = r#"{"email":"zo\u00eb@example.com","kind":"CustomerEmployee"}"#;
    let sent = r#"{ "email": "zoë@example.com", "kind": "CustomerEmployee" }"#;
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", signed)
        .await
        .unwrap();
    let (s, v) = raw(&h, &token, "POST", "/auth/users", sent, Some(&ua)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn user_action_signed_by_another_key_is_refused(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let before = user_ids(&root).await;
    let body = serde_json::to_string(&new_user("forged@example.com")).unwrap();
    // An impostor key claiming the root's credential id.
    let impostor_pem = KeySigner::generate_p256().private_key_pem().unwrap();
    let impostor = KeySigner::from_pkcs8_pem(h.root_signer.cred_id(), &impostor_pem).unwrap();
    let forged = Client::new(&h.url).with_token(token.clone(), Some(impostor));
    let err = forged
        .user_action(HttpMethod::Post, "/auth/users", &body)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    // A garbage signature over the right clientData.
    let http = h.http();
    let init: Value = http
        .post(format!("{}/auth/action/init", h.url))
        .bearer_auth(&token)
        .json(&json!({"userActionHttpMethod":"POST","userActionHttpPath":"/auth/users","userActionPayload":body}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cd = json!({"type":"key.get","challenge":init["challenge"]}).to_string();
    let resp = http
        .post(format!("{}/auth/action", h.url))
        .bearer_auth(&token)
        .json(&json!({
            "challengeIdentifier": init["challengeIdentifier"],
            "firstFactor": {"kind":"Key","credentialAssertion":{
                "credId": h.root_signer.cred_id(),
                "clientData": URL_SAFE_NO_PAD.encode(cd),
                "signature": URL_SAFE_NO_PAD.encode([7u8; 70]),
            }}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(user_ids(&root).await, before);
}

async fn racing_one_user_action_token_exactly_one_wins(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let before = user_ids(&root).await.len();
    let body = serde_json::to_string(&new_user("race@example.com")).unwrap();
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", &body)
        .await
        .unwrap();
    let attempts = (0..8).map(|_| raw(&h, &token, "POST", "/auth/users", &body, Some(&ua)));
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
    );
    assert_eq!(user_ids(&root).await.len(), before + 1);
}

async fn logout_revokes_tokens(h: Harness) {
    let a = h.root().await;
    let b = h.root().await;
    let c = h.root().await;
    a.logout(false).await.unwrap();
    assert_eq!(
        a.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert!(b.list_users(&Default::default()).await.is_ok());
    b.logout(true).await.unwrap();
    assert_eq!(
        c.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    // A fresh login works.
    assert!(h.root().await.list_users(&Default::default()).await.is_ok());
    // Garbage tokens.
    for t in ["", "x.y.z", "Bearer", &"a".repeat(5000)] {
        let resp = h
            .http()
            .get(format!("{}/auth/users", h.url))
            .header("authorization", format!("Bearer {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn registration_then_login_then_no_permissions(h: Harness) {
    let root = h.root().await;
    let (id, bob) = h.registered_user(&root, "bob@example.com").await;
    let me = root.get_user(&id).await.unwrap();
    assert!(me.is_registered);
    assert!(me.credential_uuid.starts_with("cr-"));
    // A new user holds no permissions.
    assert_eq!(
        bob.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        bob.create_user(&new_user("x@example.com"))
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Root's credential cannot log in as bob, and bob's session is his own.
    let err = Client::login(&h.url, &h.org_id, "bob@example.com", h.root_signer.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Signer(_)) || err.status() == Some(401),
        "{err}"
    );
}

async fn registration_codes_resist_guessing_and_replay(h: Harness) {
    let root = h.root().await;
    root.create_user(&new_user("carol@example.com"))
        .await
        .unwrap();
    let code = h.registration_code_for("carol@example.com").await;
    let anon = Client::new(&h.url);
    // Unknown user and wrong code look the same.
    let e1 = anon
        .registration_init(&h.org_id, "nobody@example.com", &code)
        .await
        .unwrap_err();
    let e2 = anon
        .registration_init(&h.org_id, "carol@example.com", "AAAA-AAAA-AAAA")
        .await
        .unwrap_err();
    assert_eq!(e1.status(), Some(401));
    assert_eq!(e2.status(), Some(401));
    assert_eq!(e1.to_string(), e2.to_string());
    // Lowercase and spaces are fine.
    let challenge = anon
        .registration_init(
            &h.org_id,
            "carol@example.com",
            &code.to_lowercase().replace('-', " "),
        )
        .await
        .unwrap();
    let signer = KeySigner::generate_secp256k1();
    anon.register(&challenge, &signer).await.unwrap();
    // Replaying the registration, or registering again with the used code, fails.
    let again = KeySigner::generate_p256();
    assert_eq!(
        anon.register(&challenge, &again)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert_eq!(
        anon.registration_init(&h.org_id, "carol@example.com", &code)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert!(
        Client::login(&h.url, &h.org_id, "carol@example.com", signer)
            .await
            .is_ok()
    );
    assert!(
        Client::login(&h.url, &h.org_id, "carol@example.com", again)
            .await
            .is_err()
    );

    // Five wrong guesses burn a code.
    root.create_user(&new_user("dave@example.com"))
        .await
        .unwrap();
    let code = h.registration_code_for("dave@example.com").await;
    for _ in 0..5 {
        let _ = anon
            .registration_init(&h.org_id, "dave@example.com", "WRNG-WRNG-WRNG")
            .await;
    }
    assert_eq!(
        anon.registration_init(&h.org_id, "dave@example.com", &code)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    // A resend issues a fresh code that works.
    let resp = h
        .http()
        .put(format!("{}/auth/registration/code", h.url))
        .json(&json!({"username":"dave@example.com","orgId":h.org_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut fresh = code.clone();
    for _ in 0..100 {
        fresh = h.registration_code_for("dave@example.com").await;
        if fresh != code {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_ne!(fresh, code);
    assert!(
        anon.registration_init(&h.org_id, "dave@example.com", &fresh)
            .await
            .is_ok()
    );
    // A registration with an attestation over another challenge is refused.
    let ch = anon
        .registration_init(&h.org_id, "dave@example.com", &fresh)
        .await
        .unwrap();
    let signer = KeySigner::generate_p256();
    let body = RegisterBody {
        first_factor_credential: NewCredential::Key {
            credential_info: signer.attest("another-challenge", &h.url).unwrap(),
            credential_name: None,
        },
        second_factor_credential: None,
        recovery_credential: None,
    };
    let resp = h
        .http()
        .post(format!("{}/auth/registration", h.url))
        .bearer_auth(&ch.temporary_authentication_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The temporary token is no API token.
    let resp = h
        .http()
        .get(format!("{}/auth/users", h.url))
        .bearer_auth(&ch.temporary_authentication_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn deactivated_and_deleted_users_are_locked_out(h: Harness) {
    let root = h.root().await;
    let (id, bob) = h.registered_user(&root, "eve@example.com").await;
    // Bob cannot list (no permission) but is authenticated: 403, not 401.
    assert_eq!(
        bob.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    root.deactivate_user(&id).await.unwrap();
    assert_eq!(
        bob.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    root.activate_user(&id).await.unwrap();
    // Deactivation ended the session; a new login works again.
    assert_eq!(
        bob.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    root.delete_user(&id).await.unwrap();
    let resp = Client::new(&h.url).get::<Value>("/healthz").await.unwrap();
    assert_eq!(resp["status"], "ok");
}

async fn expired_challenges_and_actions_are_refused(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let before = user_ids(&root).await;
    let body = serde_json::to_string(&new_user("late@example.com")).unwrap();
    let ua = root
        .user_action(HttpMethod::Post, "/auth/users", &body)
        .await
        .unwrap();
    h.clock.advance_secs(301);
    let (s, v) = raw(&h, &token, "POST", "/auth/users", &body, Some(&ua)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(user_ids(&root).await, before);
    // An old action challenge cannot be signed any more.
    let init: Value = h
        .http()
        .post(format!("{}/auth/action/init", h.url))
        .bearer_auth(&token)
        .json(&json!({"userActionHttpMethod":"POST","userActionHttpPath":"/auth/users","userActionPayload":body}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    h.clock.advance_secs(301);
    let challenge: keyfold_types::auth::ChallengeResponse = serde_json::from_value(init).unwrap();
    let assertion = h.root_signer.assert(&challenge).unwrap();
    let resp = h
        .http()
        .post(format!("{}/auth/action", h.url))
        .bearer_auth(&token)
        .json(&json!({"challengeIdentifier": challenge.challenge_identifier, "firstFactor": assertion}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Tokens expire too (24 h by default).
    h.clock.advance_secs(24 * 3600);
    assert_eq!(
        root.list_users(&Default::default())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
}

async fn malformed_input_gets_clear_4xx(h: Harness) {
    let root = h.root().await;
    let token = root.token().unwrap().to_string();
    let before = user_ids(&root).await;
    let signed_raw = |body: String| {
        let root = root.clone();
        async move {
            let ua = root
                .user_action(HttpMethod::Post, "/auth/users", &body)
                .await
                .unwrap();
            (body, ua)
        }
    };
    let cases = [
        "{not json".to_string(),
        r#"{"email": 42, "kind": "CustomerEmployee"}"#.to_string(),
        r#"{"email": "a@b.co", "kind": "Bogus"}"#.to_string(),
        r#"{"kind": "CustomerEmployee"}"#.to_string(),
        format!(
            r#"{{"email": "{}@b.co", "kind": "CustomerEmployee"}}"#,
            "a".repeat(300)
        ),
        r#"{"email": "not-an-email", "kind": "CustomerEmployee"}"#.to_string(),
        r#"{"email": "a@b.co", "kind": "DfnsStaff"}"#.to_string(),
        format!(
            r#"{{"email": "x@b.co", "kind": "CustomerEmployee", "externalId": "{}"}}"#,
            "e".repeat(200)
        ),
        "[]".to_string(),
        "null".to_string(),
    ];
    for case in cases {
        let (body, ua) = signed_raw(case).await;
        let (s, v) = raw(&h, &token, "POST", "/auth/users", &body, Some(&ua)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
    }
    // Oversized body: 413 before anything else happens.
    let big = format!(r#"{{"email":"{}"}}"#, "x".repeat(70 * 1024));
    let (s, _) = raw(&h, &token, "POST", "/auth/users", &big, Some("kfua_x")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let resp = h
        .http()
        .post(format!("{}/auth/login/init", h.url))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp.json::<Value>().await.unwrap()["error"]["message"].is_string());
    // Bad query strings and unknown routes.
    let (s, _) = raw(&h, &token, "GET", "/auth/users?limit=0", "", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = raw(&h, &token, "GET", "/auth/users?limit=abc", "", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = raw(
        &h,
        &token,
        "GET",
        "/auth/users?paginationToken=%%%",
        "",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = raw(&h, &token, "GET", "/auth/users?kind=Robot", "", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = raw(&h, &token, "GET", "/no/such/route", "", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = raw(&h, &token, "PATCH", "/auth/users", "", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = raw(&h, &token, "GET", "/swaps", "", None).await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
    // Login init with bad input.
    for body in [r#"{"orgId": 1}"#, r#"{"orgId":"or-x"}"#, "{}"] {
        let resp = h
            .http()
            .post(format!("{}/auth/login/init", h.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(user_ids(&root).await, before);
}

async fn external_id_makes_create_idempotent(h: Harness) {
    let root = h.root().await;
    let mut body = new_user("idem@example.com");
    body.external_id = Some("crm-42".into());
    let a = root.create_user(&body).await.unwrap();
    let b = root.create_user(&body).await.unwrap();
    assert_eq!(a.user_id, b.user_id);
    let mut other = new_user("other@example.com");
    other.external_id = Some("crm-42".into());
    assert_eq!(
        root.create_user(&other).await.unwrap_err().status(),
        Some(409)
    );
    // Concurrent retries converge on one user.
    let mut body = new_user("burst@example.com");
    body.external_id = Some("crm-43".into());
    let results = futures::future::join_all((0..5).map(|_| root.create_user(&body))).await;
    let ids: std::collections::HashSet<_> =
        results.into_iter().map(|r| r.unwrap().user_id).collect();
    assert_eq!(ids.len(), 1);
}

async fn jwt_key_rotation_keeps_sessions(h: Harness) {
    let before = h.root().await;
    h.server.state().auth.rotate_signing_key().await.unwrap();
    assert!(before.list_users(&Default::default()).await.is_ok());
    let after = h.root().await;
    assert!(after.list_users(&Default::default()).await.is_ok());
    let kid = |t: &str| -> String {
        let header = t.split('.').next().unwrap();
        let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        v["kid"].as_str().unwrap().to_string()
    };
    assert_ne!(kid(before.token().unwrap()), kid(after.token().unwrap()));
    // The token carries the org where the SDK looks for it.
    let payload = after.token().unwrap().split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(v["https://custom/app_metadata"]["orgId"], h.org_id);
}
