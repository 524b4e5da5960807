//! The store conformance suite: every test is written once against the domain's `Store`
//! port and runs on SQLite and on PostgreSQL (a throwaway database per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::future::join_all;
use keyfold_domain::StoreError;
use keyfold_domain::model::*;
use keyfold_domain::model::{Key, LifecycleStatus, SignatureRecord, Wallet};
use keyfold_domain::page::PageRequest;
use keyfold_domain::ports::Store;
use keyfold_domain::time::Timestamp;
use keyfold_types::auth::CredentialKind;
use keyfold_types::users::UserKind;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = keyfold_store::testing::TestDb::sqlite().await;
                    super::$name(&db.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = keyfold_store::testing::TestDb::postgres().await;
                    super::$name(&db.store).await;
                }
            )*
        }
    };
}

conformance!(
    bootstrap_writes_everything_and_reads_back,
    usernames_unique_among_live_users,
    external_ids_are_unique,
    users_paginate_newest_first,
    challenges_are_single_use_under_a_race,
    user_actions_are_recorded_once_per_challenge,
    registration_is_all_or_nothing,
    codes_replace_and_count_attempts,
    sessions_carry_identity_state_and_operations,
    deactivation_and_archival_revoke_the_right_tokens,
    jwt_keys_rotate,
    outbox_claims_are_exclusive_and_retry,
    builtin_permissions_sync,
    keys_reserve_then_activate_and_archive,
    wallets_reserve_with_their_key_atomically,
    signatures_are_recorded_once_per_external_id,
    presignatures_are_handed_out_once,
    transfers_and_their_nonces,
    permissions_and_assignments,
    pats_are_created_whole_and_managed,
    pat_sessions_intersect_operations,
    credentials_are_added_by_spending_their_challenge,
    credential_toggles_guard_the_last_login_credential,
    concurrent_deactivations_leave_one_credential,
    sign_counts_only_move_forward,
    quiet_codes_replace_and_are_found_by_hash,
    challenges_bought_with_a_code,
    apps_and_their_nonces,
);

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn org_fixture() -> Bootstrap {
    let n = keyfold_auth::bootstrap::NewOrganization {
        org_name: "Acme".into(),
        root_username: "root@acme.test".into(),
        root_cred_id: format!("cred-{}", rand_suffix()),
        root_public_key_pem: test_pem(),
        app_origin: "http://localhost".into(),
        app_rp_id: "localhost".into(),
    };
    keyfold_auth::bootstrap::new_organization(&n, T0).unwrap()
}

fn test_pem() -> String {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    p256::PublicKey::from(sk.verifying_key())
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn rand_suffix() -> String {
    keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Code)
}

fn user(org: &str, email: &str, at: Timestamp) -> User {
    User {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::User),
        org_id: org.into(),
        username: email.into(),
        name: email.into(),
        kind: UserKind::CustomerEmployee,
        is_active: true,
        is_registered: false,
        is_service_account: false,
        is_sso_required: false,
        is_archived: false,
        external_id: None,
        public_key: None,
        created_at: at,
        updated_at: at,
    }
}

fn token(org: &str, user: &str, kind: TokenKind) -> AccessToken {
    AccessToken {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Token),
        org_id: org.into(),
        user_id: user.into(),
        kind,
        name: "t".into(),
        is_active: true,
        expires_at: Some(T0.plus_secs(3600)),
        revoked_at: None,
        external_id: None,
        app_id: None,
        created_at: T0,
    }
}

fn challenge(org: &str, user: &str, kind: ChallengeKind, expires: Timestamp) -> Challenge {
    Challenge {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Challenge),
        org_id: org.into(),
        kind,
        user_id: user.into(),
        challenge: "c".into(),
        token_id: None,
        http_method: Some("POST".into()),
        http_path: Some("/auth/users".into()),
        payload_hash: Some("ab".into()),
        detail: None,
        expires_at: expires,
        used_at: None,
        created_at: T0,
    }
}

fn code(org: &str, user: &str, at: Timestamp) -> OneTimeCode {
    OneTimeCode {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Code),
        org_id: org.into(),
        user_id: user.into(),
        purpose: CodePurpose::Registration,
        code_hash: format!("hash-{}", at.0),
        attempts: 0,
        expires_at: at.plus_secs(3600),
        used_at: None,
        created_at: at,
    }
}

fn mail(at: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Outbox),
        kind: "email".into(),
        payload: "{}".into(),
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        sent_at: None,
        created_at: at,
    }
}

fn credential(org: &str, user: &str, cred_id: &str) -> Credential {
    Credential {
        uuid: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Credential),
        org_id: org.into(),
        user_id: user.into(),
        cred_id: cred_id.into(),
        kind: CredentialKind::Key,
        name: "k".into(),
        public_key: test_pem(),
        algorithm: None,
        is_active: true,
        sign_count: 0,
        encrypted_private_key: None,
        token_id: None,
        detail: None,
        created_at: T0,
    }
}

async fn bootstrap_writes_everything_and_reads_back(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    assert_eq!(s.get_org(&b.org.id).await.unwrap(), Some(b.org.clone()));
    assert_eq!(s.list_orgs().await.unwrap(), vec![b.org.clone()]);
    assert_eq!(s.list_apps(&b.org.id).await.unwrap(), vec![b.app.clone()]);
    assert_eq!(
        s.get_user(&b.org.id, &b.root.id).await.unwrap(),
        Some(b.root.clone())
    );
    assert_eq!(
        s.find_user_by_username(&b.org.id, &b.root.username)
            .await
            .unwrap(),
        Some(b.root.clone())
    );
    assert_eq!(
        s.find_credential(&b.org.id, &b.credential.cred_id)
            .await
            .unwrap(),
        Some(b.credential.clone())
    );
    assert_eq!(
        s.list_credentials(&b.org.id, &b.root.id).await.unwrap(),
        vec![b.credential.clone()]
    );
    let a = s
        .assignments_of(std::slice::from_ref(&b.root.id))
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].permission_name, b.admin_permission.name);
    assert_eq!(a[0].operations, b.admin_permission.operations);
    let view = s
        .get_user_view(&b.org.id, &b.root.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.user, b.root);
    assert_eq!(view.first_credential_uuid, Some(b.credential.uuid.clone()));
    assert_eq!(view.assignments, a);
    assert!(
        s.get_user_view("or-other", &b.root.id)
            .await
            .unwrap()
            .is_none()
    );
    // Another org's id sees nothing of this one.
    assert_eq!(s.get_user("or-other", &b.root.id).await.unwrap(), None);
    // Bootstrapping the same org twice is refused and changes nothing.
    assert!(s.bootstrap(&b).await.is_err());
    assert_eq!(s.list_orgs().await.unwrap().len(), 1);
}

async fn usernames_unique_among_live_users(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let u1 = user(&b.org.id, "ann@acme.test", T0);
    s.create_user(&u1, Some(&code(&b.org.id, &u1.id, T0)), Some(&mail(T0)))
        .await
        .unwrap();
    let u2 = user(&b.org.id, "ann@acme.test", T0);
    let c2 = code(&b.org.id, &u2.id, T0);
    assert_eq!(
        s.create_user(&u2, Some(&c2), Some(&mail(T0))).await,
        Err(StoreError::Conflict("users.username".into()))
    );
    // The failed insert left nothing behind: no user, no code, no mail.
    assert_eq!(s.get_user(&b.org.id, &u2.id).await.unwrap(), None);
    assert_eq!(
        s.live_code(&b.org.id, &u2.id, CodePurpose::Registration, T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.claim_outbox(T0, T0.plus_secs(60), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Archiving frees the username.
    assert!(s.archive_user(&b.org.id, &u1.id, T0).await.unwrap());
    assert!(!s.archive_user(&b.org.id, &u1.id, T0).await.unwrap());
    s.create_user(&u2, None, None).await.unwrap();
    assert_eq!(
        s.find_user_by_username(&b.org.id, "ann@acme.test")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(u2.id)
    );
}

async fn external_ids_are_unique(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let mut u1 = user(&b.org.id, "a@acme.test", T0);
    u1.external_id = Some("ext-1".into());
    s.create_user(&u1, None, None).await.unwrap();
    let mut u2 = user(&b.org.id, "b@acme.test", T0);
    u2.external_id = Some("ext-1".into());
    assert_eq!(
        s.create_user(&u2, None, None).await,
        Err(StoreError::Conflict("users.external_id".into()))
    );
    assert_eq!(
        s.find_user_by_external_id(&b.org.id, "ext-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(u1.id)
    );
}

async fn users_paginate_newest_first(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let mut ids = vec![b.root.id.clone()];
    for i in 0..7 {
        // Two users share each timestamp, to exercise the id tie-break.
        let u = user(
            &b.org.id,
            &format!("u{i}@acme.test"),
            T0.plus_secs(1 + i / 2),
        );
        s.create_user(&u, None, None).await.unwrap();
        ids.push(u.id);
    }
    let mut seen = vec![];
    let mut page = PageRequest {
        limit: 3,
        after: None,
    };
    loop {
        let p = s.list_user_views(&b.org.id, None, &page).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(
            p.items
                .iter()
                .map(|v| (v.user.created_at, v.user.id.clone())),
        );
        // Only the root holds an assignment; views must not repeat or drop users for it.
        for v in &p.items {
            assert_eq!(v.assignments.len(), usize::from(v.user.id == b.root.id));
        }
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by id, no duplicates");
    let filtered = s
        .list_user_views(
            &b.org.id,
            Some(UserKind::EndUser),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(filtered.items.is_empty());
}

async fn challenges_are_single_use_under_a_race(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let c = challenge(
        &b.org.id,
        &b.root.id,
        ChallengeKind::Login,
        T0.plus_secs(60),
    );
    s.insert_challenge(&c).await.unwrap();
    assert_eq!(s.get_challenge(&c.id).await.unwrap(), Some(c.clone()));
    let wins = join_all((0..8).map(|_| s.use_challenge(&c.id, T0))).await;
    assert_eq!(wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    assert!(
        s.get_challenge(&c.id)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_some()
    );
    // An expired challenge cannot be used.
    let old = challenge(&b.org.id, &b.root.id, ChallengeKind::Login, T0);
    s.insert_challenge(&old).await.unwrap();
    assert!(!s.use_challenge(&old.id, T0).await.unwrap());
}

/// A spent user action as the auth service records it (tokens and challenges are sealed, not
/// stored, until then).
fn spent_action(b: &Bootstrap, challenge: &str) -> UserAction {
    UserAction {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::UserAction),
        org_id: b.org.id.clone(),
        user_id: b.root.id.clone(),
        token_id: "to-1".into(),
        token_hash: format!("h-{challenge}"),
        credential_uuid: b.credential.uuid.clone(),
        http_method: "POST".into(),
        http_path: "/auth/users".into(),
        payload_hash: "ab".into(),
        challenge: challenge.into(),
        client_data: "cd".into(),
        signature: "sig".into(),
        expires_at: T0.plus_secs(60),
        used_at: Some(T0),
        created_at: T0,
    }
}

async fn user_actions_are_recorded_once_per_challenge(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    assert!(!s.challenge_answered("c-1").await.unwrap());
    // Racing spends of one action (or of two actions answering one challenge): one wins.
    let racing = join_all((0..6).map(|_| {
        let a = spent_action(&b, "c-1");
        async move { s.insert_user_action(&a).await }
    }))
    .await;
    assert_eq!(
        racing.into_iter().filter(|w| *w.as_ref().unwrap()).count(),
        1
    );
    assert!(s.challenge_answered("c-1").await.unwrap());
    assert!(!s.challenge_answered("c-2").await.unwrap());
    assert!(
        s.insert_user_action(&spent_action(&b, "c-2"))
            .await
            .unwrap()
    );
}

async fn registration_is_all_or_nothing(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let u = user(&b.org.id, "new@acme.test", T0);
    let k = code(&b.org.id, &u.id, T0);
    s.create_user(&u, Some(&k), None).await.unwrap();
    let c = challenge(
        &b.org.id,
        &u.id,
        ChallengeKind::Registration,
        T0.plus_secs(60),
    );
    s.insert_challenge(&c).await.unwrap();

    // A credential id already taken in the org: conflict, and nothing changes.
    let clash = credential(&b.org.id, &u.id, &b.credential.cred_id);
    assert_eq!(
        s.complete_registration(&c.id, &k.id, &u.id, &[clash], T0)
            .await,
        Err(StoreError::Conflict("credentials.cred_id".into()))
    );
    assert!(
        !s.get_user(&b.org.id, &u.id)
            .await
            .unwrap()
            .unwrap()
            .is_registered
    );
    assert!(
        s.get_challenge(&c.id)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    );
    assert!(
        s.live_code(&b.org.id, &u.id, CodePurpose::Registration, T0)
            .await
            .unwrap()
            .is_some()
    );

    let good = credential(&b.org.id, &u.id, "fresh-cred");
    assert!(
        s.complete_registration(&c.id, &k.id, &u.id, std::slice::from_ref(&good), T0)
            .await
            .unwrap()
    );
    assert!(
        s.get_user(&b.org.id, &u.id)
            .await
            .unwrap()
            .unwrap()
            .is_registered
    );
    assert_eq!(
        s.list_credentials(&b.org.id, &u.id).await.unwrap(),
        vec![good]
    );
    // Replaying the same registration does nothing.
    let again = credential(&b.org.id, &u.id, "another");
    assert!(
        !s.complete_registration(&c.id, &k.id, &u.id, &[again], T0)
            .await
            .unwrap()
    );
    assert_eq!(s.list_credentials(&b.org.id, &u.id).await.unwrap().len(), 1);
}

async fn codes_replace_and_count_attempts(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let u = user(&b.org.id, "c@acme.test", T0);
    let k1 = code(&b.org.id, &u.id, T0);
    s.create_user(&u, Some(&k1), None).await.unwrap();
    // Guesses are claimed before they are compared: however many race, at most `max` count.
    let claims = join_all((0..8).map(|_| s.claim_code_attempt(&k1.id, 5))).await;
    assert_eq!(
        claims.into_iter().filter(|c| *c.as_ref().unwrap()).count(),
        5
    );
    let attempts = || async {
        s.live_code(&b.org.id, &u.id, CodePurpose::Registration, T0)
            .await
            .unwrap()
            .filter(|c| c.id == k1.id)
            .map(|c| c.attempts)
    };
    assert_eq!(attempts().await, Some(5));
    // A right guess gives its claim back.
    s.refund_code_attempt(&k1.id).await.unwrap();
    assert_eq!(attempts().await, Some(4));
    assert!(s.claim_code_attempt(&k1.id, 5).await.unwrap());
    assert!(!s.claim_code_attempt(&k1.id, 5).await.unwrap());
    assert!(!s.claim_code_attempt("kc-missing", 5).await.unwrap());
    let k2 = code(&b.org.id, &u.id, T0.plus_secs(1));
    s.replace_code(&k2, &mail(T0)).await.unwrap();
    // A burnt code takes no more guesses.
    s.refund_code_attempt(&k1.id).await.unwrap();
    assert!(!s.claim_code_attempt(&k1.id, 5).await.unwrap());
    let live = s
        .live_code(&b.org.id, &u.id, CodePurpose::Registration, T0.plus_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.id, k2.id);
    assert_eq!(live.attempts, 0);
    // Expired codes are not live.
    assert!(
        s.live_code(
            &b.org.id,
            &u.id,
            CodePurpose::Registration,
            T0.plus_secs(7200)
        )
        .await
        .unwrap()
        .is_none()
    );
}

async fn sessions_carry_identity_state_and_operations(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let t = token(&b.org.id, &b.root.id, TokenKind::Token);
    s.insert_token(&t).await.unwrap();
    let sess = s.session(&t.id).await.unwrap().unwrap();
    assert_eq!(sess.token, t);
    assert!(sess.user_active && sess.org_active && !sess.user_archived);
    assert_eq!(sess.username, b.root.username);
    let mut ops: Vec<String> = sess.operations.iter().cloned().collect();
    ops.sort();
    let mut want = b.admin_permission.operations.clone();
    want.sort();
    assert_eq!(ops, want);
    assert_eq!(s.session("to-missing").await.unwrap(), None);
    // A user without assignments has a session with no operations.
    let u = user(&b.org.id, "plain@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let t2 = token(&b.org.id, &u.id, TokenKind::Token);
    s.insert_token(&t2).await.unwrap();
    assert!(
        s.session(&t2.id)
            .await
            .unwrap()
            .unwrap()
            .operations
            .is_empty()
    );
    s.revoke_token(&t.id, T0).await.unwrap();
    assert_eq!(
        s.session(&t.id).await.unwrap().unwrap().token.revoked_at,
        Some(T0)
    );
}

async fn deactivation_and_archival_revoke_the_right_tokens(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let u = user(&b.org.id, "d@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let login = token(&b.org.id, &u.id, TokenKind::Token);
    let pat = token(&b.org.id, &u.id, TokenKind::Pat);
    s.insert_token(&login).await.unwrap();
    s.insert_token(&pat).await.unwrap();
    // Read both first, so a caching store must notice each change below.
    assert!(s.session(&login.id).await.unwrap().unwrap().user_active);
    assert!(s.session(&pat.id).await.unwrap().unwrap().user_active);
    assert!(
        s.set_user_active(&b.org.id, &u.id, false, T0)
            .await
            .unwrap()
    );
    let l = s.session(&login.id).await.unwrap().unwrap();
    assert!(l.token.revoked_at.is_some() && !l.user_active);
    let p = s.session(&pat.id).await.unwrap().unwrap();
    assert!(p.token.revoked_at.is_none() && !p.user_active);
    assert!(s.set_user_active(&b.org.id, &u.id, true, T0).await.unwrap());
    assert!(s.session(&pat.id).await.unwrap().unwrap().user_active);
    // Another org cannot touch this user.
    assert!(
        !s.set_user_active("or-other", &u.id, false, T0)
            .await
            .unwrap()
    );
    assert!(s.update_user_sso(&b.org.id, &u.id, true, T0).await.unwrap());
    assert!(
        s.get_user(&b.org.id, &u.id)
            .await
            .unwrap()
            .unwrap()
            .is_sso_required
    );
    let root_login = token(&b.org.id, &b.root.id, TokenKind::Token);
    s.insert_token(&root_login).await.unwrap();
    assert!(
        s.session(&root_login.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_none()
    );
    s.revoke_sessions_of(&b.root.id, T0).await.unwrap();
    assert!(
        s.session(&root_login.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_some()
    );
    assert!(!s.session(&pat.id).await.unwrap().unwrap().user_archived);
    assert!(s.archive_user(&b.org.id, &u.id, T0).await.unwrap());
    let p = s.session(&pat.id).await.unwrap().unwrap();
    assert!(p.token.revoked_at.is_some() && p.user_archived);
    assert!(!s.set_user_active(&b.org.id, &u.id, true, T0).await.unwrap());
    assert!(
        !s.update_user_sso(&b.org.id, &u.id, false, T0)
            .await
            .unwrap()
    );
}

async fn jwt_keys_rotate(s: &dyn Store) {
    let k = |kid: &str, at: i64| JwtKey {
        kid: kid.into(),
        alg: "EdDSA".into(),
        sealed_private_key: vec![1, 2, 3],
        public_key: vec![4; 32],
        is_current: true,
        created_at: Timestamp(at),
    };
    assert!(s.jwt_keys().await.unwrap().is_empty());
    s.rotate_jwt_key(&k("jk-1", 1)).await.unwrap();
    s.rotate_jwt_key(&k("jk-2", 2)).await.unwrap();
    let keys = s.jwt_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!keys[0].is_current && keys[1].is_current);
    assert_eq!(keys[1].sealed_private_key, vec![1, 2, 3]);
}

async fn outbox_claims_are_exclusive_and_retry(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let u = user(&b.org.id, "m@acme.test", T0);
    let m = mail(T0);
    s.create_user(&u, None, Some(&m)).await.unwrap();
    let claims = join_all((0..4).map(|_| s.claim_outbox(T0, T0.plus_secs(60), 10))).await;
    let total: usize = claims.iter().map(|c| c.as_ref().unwrap().len()).sum();
    assert_eq!(total, 1, "one worker wins the message");
    // Leased: not claimable until the lease ends.
    assert!(
        s.claim_outbox(T0.plus_secs(30), T0.plus_secs(90), 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.outbox_failed(&m.id, "smtp down", T0.plus_secs(10))
        .await
        .unwrap();
    let again = s
        .claim_outbox(T0.plus_secs(10), T0.plus_secs(70), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("smtp down"));
    s.outbox_sent(&m.id, T0.plus_secs(11)).await.unwrap();
    assert!(
        s.claim_outbox(T0.plus_secs(1000), T0.plus_secs(1060), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn builtin_permissions_sync(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let t = token(&b.org.id, &b.root.id, TokenKind::Token);
    s.insert_token(&t).await.unwrap();
    assert!(s.session(&t.id).await.unwrap().unwrap().operations.len() > 1);
    let ops = vec!["Auth:Users:Read".to_string()];
    s.sync_builtin_permissions(&ops, T0.plus_secs(5))
        .await
        .unwrap();
    let a = s
        .assignments_of(std::slice::from_ref(&b.root.id))
        .await
        .unwrap();
    assert_eq!(a[0].operations, ops);
    // The very next session read sees the change, even through a cache.
    let sess = s.session(&t.id).await.unwrap().unwrap();
    assert_eq!(
        sess.operations.iter().collect::<Vec<_>>(),
        vec!["Auth:Users:Read"]
    );
}

fn key(
    org: &str,
    owner: &str,
    scheme: keyfold_types::keys::KeyScheme,
    ext: Option<&str>,
    at: Timestamp,
) -> Key {
    Key {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Key),
        org_id: org.into(),
        scheme,
        curve: match scheme {
            keyfold_types::keys::KeyScheme::EdDsa => keyfold_types::keys::KeyCurve::Ed25519,
            _ => keyfold_types::keys::KeyCurve::Secp256k1,
        },
        public_key: vec![],
        name: Some("k".into()),
        status: LifecycleStatus::Creating,
        custodial: true,
        delegation_pending: false,
        owner_id: owner.into(),
        external_id: ext.map(str::to_string),
        created_at: at,
        deleted_at: None,
    }
}

async fn keys_reserve_then_activate_and_archive(s: &dyn Store) {
    use keyfold_types::keys::KeyScheme;
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let k = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, Some("ext-k"), T0);
    s.insert_key(&k).await.unwrap();
    // A reserved key is not listed.
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    assert!(
        s.list_keys(&b.org.id, None, &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // The same externalId cannot reserve a second key.
    let dup = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, Some("ext-k"), T0);
    assert_eq!(
        s.insert_key(&dup).await,
        Err(StoreError::Conflict("keys.external_id".into()))
    );
    assert!(
        s.finish_key(&k.id, &[2; 33], LifecycleStatus::Active)
            .await
            .unwrap()
    );
    assert!(
        !s.finish_key(&k.id, &[3; 33], LifecycleStatus::Active)
            .await
            .unwrap(),
        "only once"
    );
    let got = s.get_key(&b.org.id, &k.id).await.unwrap().unwrap();
    assert_eq!(got.public_key, vec![2; 33]);
    assert_eq!(got.status, LifecycleStatus::Active);
    assert_eq!(
        s.find_key_by_external_id(&b.org.id, "ext-k")
            .await
            .unwrap()
            .unwrap()
            .id,
        k.id
    );
    assert!(s.get_key("or-other", &k.id).await.unwrap().is_none());
    for i in 0..3 {
        let k2 = key(
            &b.org.id,
            &b.root.id,
            KeyScheme::EdDsa,
            None,
            T0.plus_secs(i + 1),
        );
        s.insert_key(&k2).await.unwrap();
        s.finish_key(&k2.id, &[9; 32], LifecycleStatus::Active)
            .await
            .unwrap();
    }
    let p1 = s
        .list_keys(
            &b.org.id,
            None,
            &PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    let p2 = s
        .list_keys(
            &b.org.id,
            None,
            &PageRequest {
                limit: 2,
                after: p1.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 2);
    assert!(p2.next.is_none());
    assert_eq!(p2.items.last().unwrap().id, k.id, "oldest last");
    // An end user's listing holds only the keys delegated to them: not a custodial key that
    // names them as owner, not anyone else's.
    let mut delegated = key(
        &b.org.id,
        "us-enduser",
        KeyScheme::EdDsa,
        None,
        T0.plus_secs(7),
    );
    delegated.custodial = false;
    let custodial_same_owner = key(
        &b.org.id,
        "us-enduser",
        KeyScheme::EdDsa,
        None,
        T0.plus_secs(8),
    );
    for k2 in [&delegated, &custodial_same_owner] {
        s.insert_key(k2).await.unwrap();
        s.finish_key(&k2.id, &[7; 32], LifecycleStatus::Active)
            .await
            .unwrap();
    }
    let own = s
        .list_keys(&b.org.id, Some("us-enduser"), &page)
        .await
        .unwrap();
    assert_eq!(
        own.items.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        vec![delegated.id.as_str()]
    );
    assert!(
        s.list_keys(&b.org.id, Some("us-nobody"), &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !s.get_key(&b.org.id, &delegated.id)
            .await
            .unwrap()
            .unwrap()
            .custodial
    );
    // A key created with delayDelegation is handed over once, and only such a key.
    let mut pending = key(
        &b.org.id,
        &b.root.id,
        KeyScheme::EdDsa,
        None,
        T0.plus_secs(9),
    );
    pending.custodial = false;
    pending.delegation_pending = true;
    s.insert_key(&pending).await.unwrap();
    s.finish_key(&pending.id, &[6; 32], LifecycleStatus::Active)
        .await
        .unwrap();
    assert!(
        s.list_keys(&b.org.id, Some("us-enduser"), &page)
            .await
            .unwrap()
            .items
            .iter()
            .all(|k| k.id != pending.id),
        "not the end user's before delegation"
    );
    assert!(
        !s.delegate_key(&b.org.id, &custodial_same_owner.id, "us-enduser")
            .await
            .unwrap()
    );
    assert!(
        !s.delegate_key("or-other", &pending.id, "us-enduser")
            .await
            .unwrap()
    );
    assert!(
        s.delegate_key(&b.org.id, &pending.id, "us-enduser")
            .await
            .unwrap()
    );
    assert!(
        !s.delegate_key(&b.org.id, &pending.id, "us-other")
            .await
            .unwrap(),
        "delegation is final"
    );
    let got = s.get_key(&b.org.id, &pending.id).await.unwrap().unwrap();
    assert_eq!(
        (got.custodial, got.delegation_pending, got.owner_id.as_str()),
        (false, false, "us-enduser")
    );
    assert!(s.rename_key(&b.org.id, &k.id, "renamed").await.unwrap());
    assert!(
        s.archive_key(&b.org.id, &k.id, T0.plus_secs(9))
            .await
            .unwrap()
    );
    assert!(
        !s.archive_key(&b.org.id, &k.id, T0.plus_secs(9))
            .await
            .unwrap()
    );
    let got = s.get_key(&b.org.id, &k.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.name.as_deref()),
        (LifecycleStatus::Archived, Some("renamed"))
    );
    assert!(!s.rename_key(&b.org.id, &k.id, "again").await.unwrap());
}

async fn wallets_reserve_with_their_key_atomically(s: &dyn Store) {
    use keyfold_types::keys::KeyScheme;
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let k = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, None, T0);
    let w = |ext: Option<&str>, key_id: &str| Wallet {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Wallet),
        org_id: b.org.id.clone(),
        key_id: key_id.into(),
        network: "EthereumSepolia".into(),
        address: None,
        name: None,
        status: LifecycleStatus::Creating,
        external_id: ext.map(str::to_string),
        tags: vec!["a".into()],
        created_at: T0,
        deleted_at: None,
    };
    let w1 = w(Some("ext-w"), &k.id);
    s.insert_wallet(&w1, Some(&k)).await.unwrap();
    // A second wallet with the same externalId and a new key: refused, and its key with it.
    let k2 = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, None, T0);
    assert_eq!(
        s.insert_wallet(&w(Some("ext-w"), &k2.id), Some(&k2)).await,
        Err(StoreError::Conflict("wallets.external_id".into()))
    );
    assert!(s.get_key(&b.org.id, &k2.id).await.unwrap().is_none());
    assert!(
        s.finish_wallet(
            &w1.id,
            Some("0xabc"),
            Some((&k.id, &[2; 33])),
            LifecycleStatus::Active
        )
        .await
        .unwrap()
    );
    let got = s.get_wallet(&b.org.id, &w1.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.address.as_deref()),
        (LifecycleStatus::Active, Some("0xabc"))
    );
    assert_eq!(got.tags, vec!["a".to_string()]);
    assert_eq!(
        s.get_key(&b.org.id, &k.id).await.unwrap().unwrap().status,
        LifecycleStatus::Active
    );
    assert!(
        s.set_wallet_tags(&b.org.id, &w1.id, &["x".into(), "y".into()])
            .await
            .unwrap()
    );
    assert!(
        s.update_wallet(&b.org.id, &w1.id, Some("main"), None)
            .await
            .unwrap()
    );
    let got = s
        .find_wallet_by_external_id(&b.org.id, "ext-w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.name.as_deref(), got.tags.len()), (Some("main"), 2));
    let listed = s
        .list_wallets(
            &b.org.id,
            None,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // A wallet on a key delegated to an end user is the only one in that user's listing.
    let mut kd = key(&b.org.id, "us-enduser", KeyScheme::EdDsa, None, T0);
    kd.custodial = false;
    let wd = w(None, &kd.id);
    s.insert_wallet(&wd, Some(&kd)).await.unwrap();
    s.finish_wallet(
        &wd.id,
        Some("addr"),
        Some((&kd.id, &[5; 32])),
        LifecycleStatus::Active,
    )
    .await
    .unwrap();
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    let own = s
        .list_wallets(&b.org.id, Some("us-enduser"), &page)
        .await
        .unwrap();
    assert_eq!(
        own.items.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        vec![wd.id.as_str()]
    );
    assert_eq!(
        s.list_wallets(&b.org.id, None, &page)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert!(
        s.list_wallets(&b.org.id, Some(&b.root.id), &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Archiving the key archives its wallets.
    assert!(
        s.archive_key(&b.org.id, &k.id, T0.plus_secs(1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_wallet(&b.org.id, &w1.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        LifecycleStatus::Archived
    );
}

async fn signatures_are_recorded_once_per_external_id(s: &dyn Store) {
    use keyfold_types::keys::{KeyScheme, SignatureStatus};
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let k = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, None, T0);
    s.insert_key(&k).await.unwrap();
    s.finish_key(&k.id, &[2; 33], LifecycleStatus::Active)
        .await
        .unwrap();
    let rec = |ext: Option<&str>, at: Timestamp| SignatureRecord {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Signature),
        org_id: b.org.id.clone(),
        key_id: k.id.clone(),
        wallet_id: None,
        requester_id: b.root.id.clone(),
        token_id: Some("to-1".into()),
        kind: "Hash".into(),
        request_body: "{}".into(),
        network: None,
        status: SignatureStatus::Executing,
        reason: None,
        signature: None,
        signed_data: None,
        tx_hash: None,
        external_id: ext.map(str::to_string),
        user_action_id: Some("ua-1".into()),
        created_at: at,
        signed_at: None,
    };
    let mut r1 = rec(Some("sig-ext"), T0);
    assert!(
        s.insert_signature_spending(&r1, &spent_action(&b, "c-0"))
            .await
            .unwrap()
    );
    // A reused externalId writes nothing: not the row, not the action (its challenge is
    // still unanswered).
    let results = join_all((0..4).map(|i| {
        let r = rec(Some("sig-ext"), T0);
        let a = spent_action(&b, &format!("c-ext-{i}"));
        async move { s.insert_signature_spending(&r, &a).await }
    }))
    .await;
    assert!(
        results
            .iter()
            .all(|r| *r == Err(StoreError::Conflict("signatures.external_id".into())))
    );
    for i in 0..4 {
        assert!(!s.challenge_answered(&format!("c-ext-{i}")).await.unwrap());
    }
    // One action approves one request: racing requests spending it, one row.
    let spending = spent_action(&b, "c-race");
    let raced: Vec<_> = (0..4).map(|_| rec(None, T0.plus_secs(10))).collect();
    let results = join_all(
        raced
            .iter()
            .map(|r| s.insert_signature_spending(r, &spending)),
    )
    .await;
    assert_eq!(
        results.into_iter().filter(|w| *w.as_ref().unwrap()).count(),
        1
    );
    let mut stored = vec![];
    for r in &raced {
        if s.get_signature(&b.org.id, &r.id).await.unwrap().is_some() {
            stored.push(r.id.clone());
        }
    }
    assert_eq!(stored.len(), 1, "a refused spend writes no signature row");
    r1.status = SignatureStatus::Signed;
    r1.signature = Some("{}".into());
    r1.signed_at = Some(T0.plus_secs(1));
    assert!(s.finish_signature(&r1).await.unwrap());
    assert!(
        !s.finish_signature(&r1).await.unwrap(),
        "a finished request stays finished"
    );
    assert_eq!(
        s.find_signature_by_external_id(&b.org.id, &k.id, "sig-ext")
            .await
            .unwrap()
            .unwrap(),
        r1
    );
    // An interrupted request (left Executing) is failed by the recovery sweep.
    let r2 = rec(None, T0.plus_secs(2));
    assert!(
        s.insert_signature_spending(&r2, &spent_action(&b, "c-2"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.fail_interrupted_signatures(T0.plus_secs(1), "x")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.fail_interrupted_signatures(T0.plus_secs(3), "crashed")
            .await
            .unwrap(),
        1
    );
    let got = s.get_signature(&b.org.id, &r2.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.reason.as_deref()),
        (SignatureStatus::Failed, Some("crashed"))
    );
    let listed = s
        .list_signatures(
            &b.org.id,
            &k.id,
            None,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert_eq!(listed.items[0].id, stored[0], "newest first");
    assert_eq!(listed.items[1].id, r2.id, "newest first");
}

async fn presignatures_are_handed_out_once(s: &dyn Store) {
    use keyfold_domain::ports::PresignatureRecord;
    use keyfold_types::keys::KeyScheme;
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let k = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, None, T0);
    s.insert_key(&k).await.unwrap();
    s.finish_key(&k.id, &[2; 33], LifecycleStatus::Active)
        .await
        .unwrap();
    for (i, signers) in ["0,1", "0,1", "1,2"].iter().enumerate() {
        s.add_presignature(&PresignatureRecord {
            id: format!("ps-{i}"),
            key_id: k.id.clone(),
            signers: signers.to_string(),
            public: vec![i as u8],
            created_at: T0.plus_secs(i as i64),
        })
        .await
        .unwrap();
    }
    assert_eq!(s.count_presignatures(&k.id).await.unwrap(), 3);
    assert_eq!(
        s.ecdsa_key_status(&k.id).await.unwrap(),
        Some(LifecycleStatus::Active)
    );
    // Only presignatures of usable signer sets are handed out.
    assert!(
        s.take_presignature(&k.id, &["0,2".into()])
            .await
            .unwrap()
            .is_none()
    );
    let sets = vec!["0,1".to_string()];
    let taken = join_all((0..6).map(|_| s.take_presignature(&k.id, &sets))).await;
    let mut ids: Vec<String> = taken
        .into_iter()
        .filter_map(|t| t.unwrap())
        .map(|p| p.id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["ps-0".to_string(), "ps-1".to_string()],
        "each handed out once"
    );
    assert_eq!(
        s.take_presignature(&k.id, &["1,2".into()])
            .await
            .unwrap()
            .unwrap()
            .public,
        vec![2]
    );
    assert_eq!(s.count_presignatures(&k.id).await.unwrap(), 0);
    // A batch (FROST nonce commitments) is added in one transaction.
    let batch: Vec<PresignatureRecord> = (0..4)
        .map(|i| PresignatureRecord {
            id: format!("nb-{i}"),
            key_id: k.id.clone(),
            signers: "0,2".into(),
            public: vec![i as u8; 2],
            created_at: T0.plus_secs(i as i64),
        })
        .collect();
    s.add_presignatures(&batch).await.unwrap();
    assert!(
        s.add_presignatures(&batch[..1]).await.is_err(),
        "ids are unique"
    );
    assert_eq!(s.count_presignatures(&k.id).await.unwrap(), 4);
    let first = s
        .take_presignature(&k.id, &["0,2".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id.as_str(), first.public), ("nb-0", vec![0, 0]));
    // Leased in batches, oldest first, never more than there are, each once across racers.
    let sets = vec!["0,2".to_string()];
    let two = s.take_presignatures(&k.id, &sets, 2).await.unwrap();
    let ids: Vec<&str> = two.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec!["nb-1", "nb-2"]);
    let racing = join_all((0..4).map(|_| s.take_presignatures(&k.id, &sets, 5))).await;
    let got: usize = racing.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(got, 1);
    assert!(
        s.take_presignatures(&k.id, &sets, 5)
            .await
            .unwrap()
            .is_empty()
    );

    // Keys generated ahead of time: per scheme, oldest first, each handed out once.
    use keyfold_domain::ports::PooledKey;
    for (i, scheme) in [KeyScheme::EdDsa, KeyScheme::EdDsa, KeyScheme::Ecdsa]
        .iter()
        .enumerate()
    {
        s.add_pooled_key(&PooledKey {
            id: format!("key-pool-{i}"),
            scheme: *scheme,
            public_key: vec![i as u8; 32],
            created_at: T0.plus_secs(i as i64),
        })
        .await
        .unwrap();
    }
    assert_eq!(s.count_pooled_keys(KeyScheme::EdDsa).await.unwrap(), 2);
    assert_eq!(s.count_pooled_keys(KeyScheme::Schnorr).await.unwrap(), 0);
    assert!(
        s.take_pooled_key(KeyScheme::Schnorr)
            .await
            .unwrap()
            .is_none()
    );
    let racing = join_all((0..4).map(|_| s.take_pooled_key(KeyScheme::EdDsa))).await;
    let mut got: Vec<PooledKey> = racing.into_iter().filter_map(|r| r.unwrap()).collect();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].id.as_str(), got[0].public_key.clone()),
        ("key-pool-0", vec![0; 32])
    );
    assert_eq!(s.count_pooled_keys(KeyScheme::EdDsa).await.unwrap(), 0);
    assert_eq!(s.count_pooled_keys(KeyScheme::Ecdsa).await.unwrap(), 1);

    // Forgotten when a process starts (pooled keys) or signers restart (presignatures and
    // nonces); the keys themselves stay.
    // Records of signer sets "0,2" and "10,12" indexed at T0, "1,2" at T0 + 1 s, "0,1" at
    // T0 + 5 s: a signer is matched as a whole party number ("1" is not in "10,12", "2" is
    // not in "12"), and only what was indexed before it started goes.
    let again: Vec<PresignatureRecord> = [("0,2", 0), ("1,2", 1), ("10,12", 0), ("0,1", 5)]
        .iter()
        .enumerate()
        .map(|(i, (signers, at))| PresignatureRecord {
            id: format!("again-{i}"),
            key_id: k.id.clone(),
            signers: signers.to_string(),
            public: vec![],
            created_at: T0.plus_secs(*at),
        })
        .collect();
    s.add_presignatures(&again).await.unwrap();
    // Signer 1 started at T0 + 2 s: "1,2" goes; not "10,12" (older, but not signer 1's),
    // nor "0,1" (signer 1's, but indexed after its start).
    assert_eq!(
        s.forget_presignatures_before(1, T0.plus_secs(2))
            .await
            .unwrap(),
        1
    );
    // Signer 2 started at T0 + 1 s: "0,2" goes; not "10,12" (older, but not signer 2's).
    assert_eq!(
        s.forget_presignatures_before(2, T0.plus_secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.count_presignatures(&k.id).await.unwrap(), 2);
    assert_eq!(
        s.forget_presignatures_before(12, T0.plus_secs(9))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.forget_presignatures_before(0, T0.plus_secs(9))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.count_presignatures(&k.id).await.unwrap(), 0);
    assert_eq!(s.forget_pooled_keys().await.unwrap(), 1);
    assert_eq!(s.count_pooled_keys(KeyScheme::Ecdsa).await.unwrap(), 0);
    assert_eq!(s.forget_pooled_keys().await.unwrap(), 0);
    assert_eq!(
        s.ecdsa_key_status(&k.id).await.unwrap(),
        Some(LifecycleStatus::Active)
    );
}

async fn transfers_and_their_nonces(s: &dyn Store) {
    use keyfold_domain::ids::{IdKind, new_id};
    use keyfold_types::keys::KeyScheme;
    use keyfold_types::transfers::TransferStatus;
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let k = key(&b.org.id, &b.root.id, KeyScheme::Ecdsa, None, T0);
    let w = Wallet {
        id: new_id(IdKind::Wallet),
        org_id: b.org.id.clone(),
        key_id: k.id.clone(),
        network: "EthereumSepolia".into(),
        address: Some("0xabc".into()),
        name: None,
        status: LifecycleStatus::Creating,
        external_id: None,
        tags: vec![],
        created_at: T0,
        deleted_at: None,
    };
    s.insert_wallet(&w, Some(&k)).await.unwrap();
    let rec = |resource: TransferResource, ext: Option<&str>, at: Timestamp| TransferRecord {
        id: new_id(IdKind::Transfer),
        org_id: b.org.id.clone(),
        wallet_id: w.id.clone(),
        network: w.network.clone(),
        resource,
        requester_id: b.root.id.clone(),
        token_id: None,
        kind: "Native".into(),
        request_body: "{}".into(),
        status: TransferStatus::Executing,
        reason: None,
        contract: None,
        recipient: Some("0xdef".into()),
        amount: Some("1".into()),
        nonce: None,
        details: None,
        signed_tx: None,
        tx_hash: None,
        fee: None,
        block_number: None,
        block_time: None,
        external_id: ext.map(str::to_string),
        user_action_id: None,
        created_at: at,
        broadcast_at: None,
        confirmed_at: None,
        send_lease_until: None,
    };

    // One row per (wallet, resource, externalId), whoever races.
    let results = join_all((0..5).map(|_| {
        let r = rec(TransferResource::Transfer, Some("pay-1"), T0);
        async move { s.insert_transfer(&r).await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_))))
    );
    // The same externalId on the other resource is another request.
    s.insert_transfer(&rec(TransferResource::Transaction, Some("pay-1"), T0))
        .await
        .unwrap();
    let first = s
        .find_transfer_by_external_id(&w.id, TransferResource::Transfer, "pay-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.resource, TransferResource::Transfer);

    // Twenty concurrent allocations: twenty distinct consecutive nonces from the chain's.
    let many: Vec<TransferRecord> = (0..20)
        .map(|i| rec(TransferResource::Transfer, None, T0.plus_secs(i + 1)))
        .collect();
    for r in &many {
        s.insert_transfer(r).await.unwrap();
    }
    let wid = w.id.as_str();
    let mut got: Vec<i64> = join_all(
        many.iter()
            .map(|r| async move { s.allocate_nonce(&r.id, wid, 5).await.unwrap() }),
    )
    .await;
    got.sort_unstable();
    assert_eq!(got, (5..25).collect::<Vec<i64>>());
    let stored = s
        .get_transfer(&b.org.id, &many[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.nonce.is_some(),
        "the nonce is recorded on the transfer"
    );

    // Released nonces are handed out again, lowest first, before the counter moves on.
    s.release_nonce(&w.id, 9).await.unwrap();
    s.release_nonce(&w.id, 7).await.unwrap();
    s.release_nonce(&w.id, 7).await.unwrap();
    let t = &many[0].id;
    assert_eq!(s.allocate_nonce(t, &w.id, 5).await.unwrap(), 7);
    assert_eq!(s.allocate_nonce(t, &w.id, 5).await.unwrap(), 9);
    assert_eq!(s.allocate_nonce(t, &w.id, 5).await.unwrap(), 25);
    // A released nonce the chain has moved past is forgotten; the counter follows the chain.
    s.release_nonce(&w.id, 12).await.unwrap();
    assert_eq!(s.allocate_nonce(t, &w.id, 30).await.unwrap(), 30);
    assert_eq!(s.allocate_nonce(t, &w.id, 20).await.unwrap(), 31);

    // One sender at a time for stored bytes, and only while the row is Executing.
    let mut leased = s
        .get_transfer(&b.org.id, &many[2].id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !s.claim_send(&leased.id, T0, T0.plus_secs(60))
            .await
            .unwrap(),
        "nothing stored to send yet"
    );
    leased.signed_tx = Some("0x02aa".into());
    assert!(
        s.update_transfer(&leased, TransferStatus::Executing)
            .await
            .unwrap()
    );
    let claims = join_all((0..4).map(|_| s.claim_send(&leased.id, T0, T0.plus_secs(60)))).await;
    assert_eq!(claims.iter().filter(|c| *c.as_ref().unwrap()).count(), 1);
    assert!(
        !s.claim_send(&leased.id, T0.plus_secs(59), T0.plus_secs(120))
            .await
            .unwrap()
    );
    assert!(
        s.claim_send(&leased.id, T0.plus_secs(60), T0.plus_secs(120))
            .await
            .unwrap()
    );
    leased = s
        .get_transfer(&b.org.id, &leased.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased.send_lease_until, Some(T0.plus_secs(120)));
    leased.status = TransferStatus::Failed;
    assert!(
        s.update_transfer(&leased, TransferStatus::Executing)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_send(&leased.id, T0.plus_secs(500), T0.plus_secs(560))
            .await
            .unwrap(),
        "a failed request is never sent"
    );

    // Moves are conditional on the status the caller saw.
    let mut r = s
        .get_transfer(&b.org.id, &many[1].id)
        .await
        .unwrap()
        .unwrap();
    r.status = TransferStatus::Broadcasted;
    r.signed_tx = Some("0x02".into());
    r.tx_hash = Some("0xhash".into());
    r.contract = Some("0xtoken".into());
    r.broadcast_at = Some(T0.plus_secs(50));
    assert!(
        !s.update_transfer(&r, TransferStatus::Broadcasted)
            .await
            .unwrap()
    );
    assert!(
        s.update_transfer(&r, TransferStatus::Executing)
            .await
            .unwrap()
    );
    assert!(
        !s.update_transfer(&r, TransferStatus::Executing)
            .await
            .unwrap()
    );
    assert_eq!(s.get_transfer(&b.org.id, &r.id).await.unwrap().unwrap(), r);
    assert_eq!(
        s.transfer_contracts(&w.id).await.unwrap(),
        vec!["0xtoken".to_string()]
    );
    r.status = TransferStatus::Confirmed;
    r.block_number = Some(7);
    r.block_time = Some(T0.plus_secs(60));
    r.fee = Some("21000".into());
    assert!(
        s.update_transfer(&r, TransferStatus::Broadcasted)
            .await
            .unwrap()
    );

    // Coins are held by one transfer at a time, all or none; racing holders get one each.
    let ops = |v: &[&str]| v.iter().map(|o| o.to_string()).collect::<Vec<_>>();
    assert!(
        s.reserve_outpoints(&w.id, &many[3].id, &ops(&["aa:0", "bb:1"]))
            .await
            .unwrap()
    );
    assert!(
        !s.reserve_outpoints(&w.id, &many[4].id, &ops(&["cc:0", "bb:1"]))
            .await
            .unwrap(),
        "bb:1 is held"
    );
    assert_eq!(
        s.reserved_outpoints(&w.id).await.unwrap(),
        ops(&["aa:0", "bb:1"]),
        "a refused reservation holds nothing"
    );
    let dd = ops(&["dd:2"]);
    let racing = join_all(
        many[5..13]
            .iter()
            .map(|t| s.reserve_outpoints(&w.id, &t.id, &dd)),
    )
    .await;
    assert_eq!(racing.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    s.release_outpoints(&many[3].id).await.unwrap();
    assert_eq!(s.reserved_outpoints(&w.id).await.unwrap(), ops(&["dd:2"]));
    assert!(
        s.reserve_outpoints(&w.id, &many[4].id, &ops(&["cc:0", "bb:1"]))
            .await
            .unwrap()
    );

    // In flight: everything but the confirmed and the failed one, oldest first.
    let unsettled = s.unsettled_transfers(100).await.unwrap();
    assert_eq!(unsettled.len(), 22 - 2);
    assert!(unsettled.iter().all(|u| u.id != r.id));
    assert!(
        unsettled
            .windows(2)
            .all(|p| p[0].created_at <= p[1].created_at)
    );

    // Lists: per resource, newest first, paged; history is the confirmed ones only.
    let mut seen = vec![];
    let mut page = PageRequest {
        limit: 7,
        after: None,
    };
    loop {
        let p = s
            .list_transfers(
                &b.org.id,
                &w.id,
                Some(TransferResource::Transfer),
                false,
                &page,
            )
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|t| (t.created_at, t.id.clone())));
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 21);
    assert!(
        seen.windows(2).all(|p| p[0] > p[1]),
        "newest first, no repeats"
    );
    let confirmed = s
        .list_transfers(
            &b.org.id,
            &w.id,
            None,
            true,
            &PageRequest {
                limit: 50,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(confirmed.items.len(), 1);
    assert_eq!(confirmed.items[0].id, r.id);
    // Another organization sees nothing.
    assert!(s.get_transfer("or-other", &r.id).await.unwrap().is_none());
}

async fn permissions_and_assignments(s: &dyn Store) {
    use keyfold_domain::ids::{IdKind, new_id};
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let perm = |name: &str, at: Timestamp| Permission {
        id: new_id(IdKind::Permission),
        org_id: b.org.id.clone(),
        name: name.into(),
        operations: vec!["Auth:Users:Read".into()],
        is_immutable: false,
        is_archived: false,
        created_at: at,
        updated_at: at,
    };
    let mut p1 = perm("readers", T0.plus_secs(1));
    let p2 = perm("others", T0.plus_secs(2));
    s.insert_permission(&p1).await.unwrap();
    s.insert_permission(&p2).await.unwrap();
    assert_eq!(
        s.get_permission(&b.org.id, &p1.id).await.unwrap().unwrap(),
        p1
    );
    assert!(
        s.get_permission("or-other", &p1.id)
            .await
            .unwrap()
            .is_none()
    );
    let page = PageRequest {
        limit: 2,
        after: None,
    };
    let first = s.list_permissions(&b.org.id, &page).await.unwrap();
    assert_eq!(first.items[0].id, p2.id, "newest first");
    let rest = s
        .list_permissions(
            &b.org.id,
            &PageRequest {
                limit: 2,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.len() + rest.items.len(),
        3,
        "two and the built-in one"
    );
    assert!(rest.items.iter().any(|p| p.is_immutable));

    // Updates apply to mutable permissions only.
    p1.operations.push("Auth:Users:Create".into());
    p1.updated_at = T0.plus_secs(5);
    assert!(s.update_permission(&p1).await.unwrap());
    assert_eq!(
        s.get_permission(&b.org.id, &p1.id).await.unwrap().unwrap(),
        p1
    );
    let mut admin = b.admin_permission.clone();
    admin.operations = vec!["Auth:Users:Read".into()];
    assert!(
        !s.update_permission(&admin).await.unwrap(),
        "the built-in one stays"
    );

    // One assignment per (permission, identity), whoever races; it grants at once.
    let a = |id: &str| Assignment {
        id: new_id(IdKind::Assignment),
        org_id: b.org.id.clone(),
        permission_id: p1.id.clone(),
        identity_id: id.into(),
        is_immutable: false,
        created_at: T0.plus_secs(6),
        updated_at: T0.plus_secs(6),
    };
    let results = join_all((0..4).map(|_| {
        let x = a(&b.root.id);
        async move { s.insert_assignment(&x).await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_))))
    );
    let listed = s
        .list_assignments(
            &b.org.id,
            &p1.id,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let granted = s
        .assignments_of(std::slice::from_ref(&b.root.id))
        .await
        .unwrap();
    assert!(granted.iter().any(|g| g.permission_id == p1.id));
    assert!(
        s.delete_assignment(&b.org.id, &listed.items[0].id)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_assignment(&b.org.id, &listed.items[0].id)
            .await
            .unwrap()
    );
    assert!(
        !s.delete_assignment(&b.org.id, &b.assignment.id)
            .await
            .unwrap(),
        "the root's built-in assignment stays"
    );
    assert!(
        s.get_assignment(&b.org.id, &b.assignment.id)
            .await
            .unwrap()
            .is_some()
    );
}

// ------------------------------------------------------------------------------------------
// Identity: personal access tokens, credentials added later, quiet codes, applications.
// ------------------------------------------------------------------------------------------

fn permission(org: &str, name: &str, ops: &[&str], at: Timestamp) -> Permission {
    Permission {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Permission),
        org_id: org.into(),
        name: name.into(),
        operations: ops.iter().map(|o| o.to_string()).collect(),
        is_immutable: false,
        is_archived: false,
        created_at: at,
        updated_at: at,
    }
}

fn assignment(org: &str, permission_id: &str, identity_id: &str) -> Assignment {
    Assignment {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::Assignment),
        org_id: org.into(),
        permission_id: permission_id.into(),
        identity_id: identity_id.into(),
        is_immutable: false,
        created_at: T0,
        updated_at: T0,
    }
}

/// A PAT of `user` with its own key (`cred_id`), as `create_pat` takes them.
fn pat(org: &str, user: &str, cred_id: &str, ext: Option<&str>) -> (AccessToken, Credential) {
    let mut t = token(org, user, TokenKind::Pat);
    t.external_id = ext.map(str::to_string);
    let mut k = credential(org, user, cred_id);
    k.token_id = Some(t.id.clone());
    (t, k)
}

fn credential_code(org: &str, user: &str, hash: &str, at: Timestamp) -> OneTimeCode {
    OneTimeCode {
        purpose: CodePurpose::Credential,
        code_hash: hash.into(),
        expires_at: at.plus_secs(600),
        ..code(org, user, at)
    }
}

fn credential_challenge(org: &str, user: &str, expires: Timestamp) -> Challenge {
    Challenge {
        detail: Some(r#"{"kind":"Key","rp":{"id":"localhost"}}"#.into()),
        ..challenge(org, user, ChallengeKind::Credential, expires)
    }
}

fn cred_of(org: &str, user: &str, cred_id: &str, kind: CredentialKind) -> Credential {
    Credential {
        kind,
        ..credential(org, user, cred_id)
    }
}

/// Adds a credential to a registered user the way `/auth/credentials` does: a fresh
/// credential challenge spent by `add_credential`.
async fn add_cred(s: &dyn Store, c: &Credential) {
    let ch = credential_challenge(&c.org_id, &c.user_id, T0.plus_secs(60));
    s.insert_challenge(&ch).await.unwrap();
    assert!(s.add_credential(&ch.id, None, c, T0).await.unwrap());
}

async fn ops_of(s: &dyn Store, token_id: &str) -> Vec<String> {
    let mut ops: Vec<String> = s
        .session(token_id)
        .await
        .unwrap()
        .unwrap()
        .operations
        .iter()
        .cloned()
        .collect();
    ops.sort();
    ops
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Whether a credential is active, read both by id and through its user's list (which the
/// SQLite backend caches: the two must agree right after every write).
async fn is_active_cred(s: &dyn Store, org: &str, cred_id: &str) -> bool {
    let by_id = s.find_credential(org, cred_id).await.unwrap().unwrap();
    let listed = s
        .list_credentials(org, &by_id.user_id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.cred_id == cred_id)
        .unwrap();
    assert_eq!(listed, by_id, "the user's credential list is up to date");
    by_id.is_active
}

async fn pats_are_created_whole_and_managed(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "pat@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let own = cred_of(org, &u.id, "u-own", CredentialKind::Key);
    add_cred(s, &own).await;
    let p = permission(org, "readers", &["Auth:Users:Read"], T0);
    s.insert_permission(&p).await.unwrap();

    let (mut t, mut k) = pat(org, &u.id, "pat-key-1", Some("pat-ext-1"));
    t.name = "ci".into();
    k.detail = Some(r#"{"note":"pat key"}"#.into());
    let grant = assignment(org, &p.id, &t.id);
    s.create_pat(&t, &k, Some(&grant)).await.unwrap();
    assert_eq!(s.get_token(org, &t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(s.get_token("or-other", &t.id).await.unwrap(), None);
    assert_eq!(s.get_token(org, "to-missing").await.unwrap(), None);
    assert_eq!(
        s.find_credential(org, "pat-key-1").await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        s.get_assignment(org, &grant.id).await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(s.tokens_of(&u.id).await.unwrap(), vec![t.clone()]);

    // A taken externalId: Conflict, and nothing of the second PAT is left behind.
    let (dup, dup_key) = pat(org, &u.id, "pat-key-2", Some("pat-ext-1"));
    let dup_grant = assignment(org, &p.id, &dup.id);
    let r = s.create_pat(&dup, &dup_key, Some(&dup_grant)).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(s.get_token(org, &dup.id).await.unwrap(), None);
    assert_eq!(s.find_credential(org, "pat-key-2").await.unwrap(), None);
    assert_eq!(s.get_assignment(org, &dup_grant.id).await.unwrap(), None);
    // A taken credential id: Conflict as well, and the token is not stored.
    let (dup2, dup2_key) = pat(org, &u.id, "pat-key-1", Some("pat-ext-2"));
    assert_eq!(
        s.create_pat(&dup2, &dup2_key, None).await,
        Err(StoreError::Conflict("credentials.cred_id".into()))
    );
    assert_eq!(s.get_token(org, &dup2.id).await.unwrap(), None);
    assert_eq!(s.tokens_of(&u.id).await.unwrap(), vec![t.clone()]);
    // PATs without an externalId never clash.
    let (plain1, plain1_key) = pat(org, &u.id, "plain-1", None);
    let (plain2, plain2_key) = pat(org, &u.id, "plain-2", None);
    s.create_pat(&plain1, &plain1_key, None).await.unwrap();
    s.create_pat(&plain2, &plain2_key, None).await.unwrap();
    // The externalId is unique per organization only.
    let b2 = org_fixture();
    s.bootstrap(&b2).await.unwrap();
    let (other, other_key) = pat(&b2.org.id, &b2.root.id, "pat-key-1", Some("pat-ext-1"));
    s.create_pat(&other, &other_key, None).await.unwrap();

    // Renames and externalId changes.
    assert!(
        s.update_token(org, &t.id, Some("renamed"), None)
            .await
            .unwrap()
    );
    let got = s.get_token(org, &t.id).await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.external_id.as_deref()),
        ("renamed", Some("pat-ext-1"))
    );
    // Setting a token's own externalId again is no conflict.
    assert!(
        s.update_token(org, &t.id, None, Some("pat-ext-1"))
            .await
            .unwrap()
    );
    let r = s
        .update_token(org, &plain1.id, Some("x"), Some("pat-ext-1"))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "got {r:?}");
    assert_eq!(
        s.get_token(org, &plain1.id).await.unwrap(),
        Some(plain1.clone()),
        "a refused update changes nothing"
    );
    assert!(
        s.update_token(org, &t.id, None, Some("pat-ext-9"))
            .await
            .unwrap()
    );
    // The old externalId is free again.
    assert!(
        s.update_token(org, &plain1.id, None, Some("pat-ext-1"))
            .await
            .unwrap()
    );
    assert!(
        !s.update_token("or-other", &t.id, Some("x"), None)
            .await
            .unwrap()
    );
    assert!(
        !s.update_token(org, "to-missing", Some("x"), None)
            .await
            .unwrap()
    );
    // The very next session read shows the new name, even through a cache.
    assert_eq!(
        s.session(&t.id).await.unwrap().unwrap().token.name,
        "renamed"
    );
    assert!(
        s.update_token(org, &t.id, Some("again"), None)
            .await
            .unwrap()
    );
    assert_eq!(s.session(&t.id).await.unwrap().unwrap().token.name, "again");

    // Deactivation and reactivation, seen on the very next session read.
    assert!(s.session(&t.id).await.unwrap().unwrap().token.is_active);
    assert!(s.set_token_active(org, &t.id, false).await.unwrap());
    assert!(!s.session(&t.id).await.unwrap().unwrap().token.is_active);
    assert!(!s.get_token(org, &t.id).await.unwrap().unwrap().is_active);
    assert!(!s.set_token_active("or-other", &t.id, true).await.unwrap());
    assert!(!s.session(&t.id).await.unwrap().unwrap().token.is_active);
    assert!(!s.set_token_active(org, "to-missing", true).await.unwrap());
    assert!(s.set_token_active(org, &t.id, true).await.unwrap());
    assert!(s.session(&t.id).await.unwrap().unwrap().token.is_active);

    // Archival: revoked, inactive, its own key deactivated — nothing else's.
    let at = T0.plus_secs(10);
    assert!(
        s.session(&t.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_none()
    );
    assert!(!s.archive_token("or-other", &t.id, at).await.unwrap());
    assert!(is_active_cred(s, org, "pat-key-1").await);
    assert!(s.archive_token(org, &t.id, at).await.unwrap());
    let got = s.get_token(org, &t.id).await.unwrap().unwrap();
    assert_eq!((got.revoked_at, got.is_active), (Some(at), false));
    let sess = s.session(&t.id).await.unwrap().unwrap();
    assert_eq!(sess.token.revoked_at, Some(at));
    assert!(!sess.token.is_active);
    assert!(!is_active_cred(s, org, "pat-key-1").await);
    assert!(is_active_cred(s, org, "plain-1").await, "another PAT's key");
    assert!(is_active_cred(s, org, "u-own").await, "the user's own key");
    assert!(
        is_active_cred(s, &b2.org.id, "pat-key-1").await,
        "another org's key"
    );
    assert!(
        !s.archive_token(org, &t.id, T0.plus_secs(20)).await.unwrap(),
        "only once"
    );
    assert_eq!(
        s.get_token(org, &t.id).await.unwrap().unwrap().revoked_at,
        Some(at)
    );
    // A revoked token is neither renamed nor reactivated.
    assert!(
        !s.update_token(org, &t.id, Some("zombie"), None)
            .await
            .unwrap()
    );
    assert!(!s.set_token_active(org, &t.id, true).await.unwrap());
    let got = s.get_token(org, &t.id).await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.is_active), ("again", false));
    let revoked_at = T0.plus_secs(11);
    s.revoke_token(&plain2.id, revoked_at).await.unwrap();
    assert_eq!(
        s.session(&plain2.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at,
        Some(revoked_at)
    );
    assert!(
        !s.update_token(org, &plain2.id, Some("x"), None)
            .await
            .unwrap()
    );
    assert!(!s.set_token_active(org, &plain2.id, false).await.unwrap());
    assert_eq!(
        s.get_token(org, &plain2.id).await.unwrap().unwrap().name,
        plain2.name
    );
}

async fn pat_sessions_intersect_operations(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let (a, bb, c, d) = ("Op:A", "Op:B", "Op:C", "Op:D");
    let u = user(org, "ops@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let p_ab = permission(org, "ab", &[a, bb], T0);
    let p_bc = permission(org, "bc", &[bb, c], T0);
    let p_c = permission(org, "c", &[c], T0);
    let p_d = permission(org, "d", &[d], T0);
    for p in [&p_ab, &p_bc, &p_c, &p_d] {
        s.insert_permission(p).await.unwrap();
    }
    let user_ab = assignment(org, &p_ab.id, &u.id);
    s.insert_assignment(&user_ab).await.unwrap();

    let (t, k) = pat(org, &u.id, "pat-ops", None);
    s.create_pat(&t, &k, Some(&assignment(org, &p_bc.id, &t.id)))
        .await
        .unwrap();
    let (bare, bare_key) = pat(org, &u.id, "pat-bare", None);
    s.create_pat(&bare, &bare_key, None).await.unwrap();
    let login = token(org, &u.id, TokenKind::Token);
    s.insert_token(&login).await.unwrap();

    // The PAT: its user's operations it also holds itself; without its own, none.
    assert_eq!(ops_of(s, &t.id).await, strs(&[bb]));
    assert_eq!(ops_of(s, &bare.id).await, Vec::<String>::new());
    assert_eq!(ops_of(s, &login.id).await, strs(&[a, bb]));
    let sess = s.session(&t.id).await.unwrap().unwrap();
    assert_eq!(sess.token, t);
    assert_eq!(sess.username, u.username);
    assert!(sess.user_active && !sess.user_archived && sess.org_active);

    // Granting the user more shows at once in the PAT's session (within its own grant).
    let user_c = assignment(org, &p_c.id, &u.id);
    s.insert_assignment(&user_c).await.unwrap();
    assert_eq!(ops_of(s, &t.id).await, strs(&[bb, c]));
    assert_eq!(ops_of(s, &login.id).await, strs(&[a, bb, c]));
    assert_eq!(ops_of(s, &bare.id).await, Vec::<String>::new());
    // Revoking the user's permission takes it from the PAT at once.
    assert!(s.delete_assignment(org, &user_ab.id).await.unwrap());
    assert_eq!(ops_of(s, &t.id).await, strs(&[c]));
    assert_eq!(ops_of(s, &login.id).await, strs(&[c]));
    // The PAT's own grants never exceed its user's.
    s.insert_assignment(&assignment(org, &p_ab.id, &t.id))
        .await
        .unwrap();
    s.insert_assignment(&assignment(org, &p_d.id, &t.id))
        .await
        .unwrap();
    assert_eq!(ops_of(s, &t.id).await, strs(&[c]));
    let user_ab2 = assignment(org, &p_ab.id, &u.id);
    s.insert_assignment(&user_ab2).await.unwrap();
    assert_eq!(ops_of(s, &t.id).await, strs(&[a, bb, c]));
    // The bare PAT gains what it is granted itself.
    s.insert_assignment(&assignment(org, &p_c.id, &bare.id))
        .await
        .unwrap();
    assert_eq!(ops_of(s, &bare.id).await, strs(&[c]));
    // An archived permission grants nothing, to the user nor the PAT.
    let mut archived = p_c.clone();
    archived.is_archived = true;
    archived.updated_at = T0.plus_secs(1);
    assert!(s.update_permission(&archived).await.unwrap());
    assert_eq!(ops_of(s, &bare.id).await, Vec::<String>::new());
    assert_eq!(
        ops_of(s, &t.id).await,
        strs(&[a, bb]),
        "B still from bc ∩ ab"
    );
    assert_eq!(ops_of(s, &login.id).await, strs(&[a, bb]));

    // A login token gets its user's operations only, whatever names the token itself.
    s.insert_assignment(&assignment(org, &p_d.id, &login.id))
        .await
        .unwrap();
    assert_eq!(ops_of(s, &login.id).await, strs(&[a, bb]));
    // So does a service account's token.
    let mut sa = user(org, "robot", T0);
    sa.is_service_account = true;
    sa.is_registered = true;
    let sa_key = credential(org, &sa.id, "sa-key");
    let sa_token = token(org, &sa.id, TokenKind::ServiceAccount);
    s.create_service_account(
        &sa,
        &sa_key,
        &sa_token,
        Some(&assignment(org, &p_ab.id, &sa.id)),
    )
    .await
    .unwrap();
    s.insert_assignment(&assignment(org, &p_d.id, &sa_token.id))
        .await
        .unwrap();
    assert_eq!(ops_of(s, &sa_token.id).await, strs(&[a, bb]));
    assert!(
        s.session(&sa_token.id)
            .await
            .unwrap()
            .unwrap()
            .is_service_account
    );

    // Revoked and archived PATs still have sessions, marked revoked.
    let at = T0.plus_secs(30);
    assert!(s.archive_token(org, &t.id, at).await.unwrap());
    assert_eq!(
        s.session(&t.id).await.unwrap().unwrap().token.revoked_at,
        Some(at)
    );
    assert!(
        s.session(&bare.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_none()
    );
    let (t3, k3) = pat(org, &u.id, "pat-3", None);
    s.create_pat(&t3, &k3, None).await.unwrap();
    assert!(
        s.session(&t3.id)
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_none()
    );
    s.revoke_token(&t3.id, at).await.unwrap();
    assert_eq!(
        s.session(&t3.id).await.unwrap().unwrap().token.revoked_at,
        Some(at)
    );
    // Archiving the user revokes its PATs, seen on the very next read.
    let gone = T0.plus_secs(40);
    assert!(s.archive_user(org, &u.id, gone).await.unwrap());
    let sess = s.session(&bare.id).await.unwrap().unwrap();
    assert_eq!(sess.token.revoked_at, Some(gone));
    assert!(sess.user_archived && !sess.user_active);
}

async fn credentials_are_added_by_spending_their_challenge(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "add@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();

    let c1 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c1).await.unwrap();
    assert_eq!(s.get_challenge(&c1.id).await.unwrap(), Some(c1.clone()));
    let mut k1 = cred_of(org, &u.id, "added-1", CredentialKind::Fido2);
    k1.detail = Some(r#"{"cred":"webauthn","counter":0}"#.into());
    k1.algorithm = Some("ES256".into());
    assert!(s.add_credential(&c1.id, None, &k1, T0).await.unwrap());
    assert_eq!(
        s.find_credential(org, "added-1").await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(
        s.get_challenge(&c1.id).await.unwrap().unwrap().used_at,
        Some(T0)
    );

    // A spent, expired or unknown challenge: false, and nothing is stored.
    let k2 = cred_of(org, &u.id, "added-2", CredentialKind::Key);
    assert!(!s.add_credential(&c1.id, None, &k2, T0).await.unwrap());
    let c2 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c2).await.unwrap();
    assert!(
        !s.add_credential(&c2.id, None, &k2, T0.plus_secs(60))
            .await
            .unwrap()
    );
    assert!(!s.add_credential("ch-missing", None, &k2, T0).await.unwrap());
    assert_eq!(s.find_credential(org, "added-2").await.unwrap(), None);
    assert_eq!(
        s.list_credentials(org, &u.id).await.unwrap(),
        vec![k1.clone()]
    );

    // From the code flow: the challenge and the code are both spent.
    let code1 = credential_code(org, &u.id, "h-add-1", T0);
    s.replace_code_quietly(&code1).await.unwrap();
    let c3 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c3).await.unwrap();
    assert!(
        s.add_credential(&c3.id, Some(&code1.id), &k2, T0)
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_credential(org, "added-2").await.unwrap(),
        Some(k2.clone())
    );
    assert!(
        s.find_live_code("h-add-1", CodePurpose::Credential, T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_challenge(&c3.id)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_some()
    );
    // A spent code: false, nothing stored.
    let k3 = cred_of(org, &u.id, "added-3", CredentialKind::Key);
    let c4 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c4).await.unwrap();
    assert!(
        !s.add_credential(&c4.id, Some(&code1.id), &k3, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.find_credential(org, "added-3").await.unwrap(), None);
    // An expired code: false, nothing stored.
    let code2 = credential_code(org, &u.id, "h-add-2", T0);
    s.replace_code_quietly(&code2).await.unwrap();
    let c5 = credential_challenge(org, &u.id, T0.plus_secs(7200));
    s.insert_challenge(&c5).await.unwrap();
    assert!(
        !s.add_credential(&c5.id, Some(&code2.id), &k3, code2.expires_at)
            .await
            .unwrap()
    );
    assert!(
        !s.add_credential(&c5.id, Some("co-missing"), &k3, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.find_credential(org, "added-3").await.unwrap(), None);

    // A taken credId: Conflict, and neither the challenge nor the code is spent.
    let code3 = credential_code(org, &u.id, "h-add-3", T0);
    s.replace_code_quietly(&code3).await.unwrap();
    let c6 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c6).await.unwrap();
    let clash = cred_of(org, &u.id, &b.credential.cred_id, CredentialKind::Key);
    assert_eq!(
        s.add_credential(&c6.id, Some(&code3.id), &clash, T0).await,
        Err(StoreError::Conflict("credentials.cred_id".into()))
    );
    assert_eq!(
        s.get_challenge(&c6.id).await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(
        s.find_live_code("h-add-3", CodePurpose::Credential, T0)
            .await
            .unwrap(),
        Some(code3.clone())
    );
    let c7 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c7).await.unwrap();
    let clash2 = cred_of(org, &u.id, "added-1", CredentialKind::Key);
    assert_eq!(
        s.add_credential(&c7.id, None, &clash2, T0).await,
        Err(StoreError::Conflict("credentials.cred_id".into()))
    );
    assert_eq!(
        s.get_challenge(&c7.id).await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(
        s.find_credential(org, "added-1").await.unwrap(),
        Some(k1.clone())
    );
    // The same challenge and code then serve a fresh credId.
    assert!(
        s.add_credential(&c6.id, Some(&code3.id), &k3, T0)
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_credential(org, "added-3").await.unwrap(),
        Some(k3.clone())
    );
    // The same credId in another organization is another credential.
    let b2 = org_fixture();
    s.bootstrap(&b2).await.unwrap();
    let c8 = credential_challenge(&b2.org.id, &b2.root.id, T0.plus_secs(60));
    s.insert_challenge(&c8).await.unwrap();
    let elsewhere = cred_of(&b2.org.id, &b2.root.id, "added-1", CredentialKind::Key);
    assert!(
        s.add_credential(&c8.id, None, &elsewhere, T0)
            .await
            .unwrap()
    );

    // Racing uses of one challenge: one credential.
    let c9 = credential_challenge(org, &u.id, T0.plus_secs(60));
    s.insert_challenge(&c9).await.unwrap();
    let racers: Vec<Credential> = (0..8)
        .map(|i| cred_of(org, &u.id, &format!("race-{i}"), CredentialKind::Key))
        .collect();
    let wins = join_all(racers.iter().map(|k| s.add_credential(&c9.id, None, k, T0))).await;
    assert_eq!(wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    let stored = s
        .list_credentials(org, &u.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.cred_id.starts_with("race-"))
        .count();
    assert_eq!(stored, 1);
}

async fn credential_toggles_guard_the_last_login_credential(s: &dyn Store) {
    use keyfold_domain::ports::CredentialToggle::{Done, LastActive, NotFound};
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "toggle@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let k1 = cred_of(org, &u.id, "t-key", CredentialKind::Key);
    let rk = cred_of(org, &u.id, "t-recovery", CredentialKind::RecoveryKey);
    add_cred(s, &k1).await;
    add_cred(s, &rk).await;
    let set = |uuid: &str, active: bool| {
        let (org, uid, uuid) = (org.to_string(), u.id.clone(), uuid.to_string());
        async move {
            s.set_credential_active(&org, &uid, &uuid, active)
                .await
                .unwrap()
        }
    };

    // The only login credential stays: a recovery key doesn't count…
    assert_eq!(set(&k1.uuid, false).await, LastActive);
    assert!(is_active_cred(s, org, "t-key").await);
    // …nor does a PAT's key, which is not the user's to toggle either.
    let (t, pk) = pat(org, &u.id, "t-pat-key", None);
    s.create_pat(&t, &pk, None).await.unwrap();
    assert_eq!(set(&k1.uuid, false).await, LastActive);
    assert_eq!(set(&pk.uuid, false).await, NotFound);
    assert_eq!(set(&pk.uuid, true).await, NotFound);
    assert!(is_active_cred(s, org, "t-pat-key").await);
    // Someone else's, another organization's, or unknown: not found, nothing changes.
    assert_eq!(set(&b.credential.uuid, false).await, NotFound);
    assert!(is_active_cred(s, org, &b.credential.cred_id).await);
    assert_eq!(
        s.set_credential_active("or-other", &u.id, &k1.uuid, false)
            .await
            .unwrap(),
        NotFound
    );
    assert_eq!(
        s.set_credential_active(org, &b.root.id, &k1.uuid, false)
            .await
            .unwrap(),
        NotFound
    );
    assert_eq!(set("cr-missing", true).await, NotFound);
    assert!(is_active_cred(s, org, "t-key").await);

    // A recovery key can always go.
    assert_eq!(set(&rk.uuid, false).await, Done);
    assert!(!is_active_cred(s, org, "t-recovery").await);
    assert_eq!(set(&rk.uuid, true).await, Done);
    assert!(is_active_cred(s, org, "t-recovery").await);

    // With a second login credential, either one can go, but not both.
    let k2 = cred_of(org, &u.id, "t-fido", CredentialKind::Fido2);
    add_cred(s, &k2).await;
    assert_eq!(set(&k1.uuid, false).await, Done);
    assert!(!is_active_cred(s, org, "t-key").await);
    assert_eq!(set(&k2.uuid, false).await, LastActive);
    assert!(is_active_cred(s, org, "t-fido").await);
    // An inactive one may be "deactivated" again while another is active.
    assert_eq!(set(&k1.uuid, false).await, Done);
    // Activation is never refused, and is idempotent.
    assert_eq!(set(&k1.uuid, true).await, Done);
    assert_eq!(set(&k1.uuid, true).await, Done);
    assert!(is_active_cred(s, org, "t-key").await);
    assert_eq!(set(&k2.uuid, false).await, Done);
    assert!(!is_active_cred(s, org, "t-fido").await);
    // A password-protected key counts as a login credential.
    let k3 = cred_of(org, &u.id, "t-ppk", CredentialKind::PasswordProtectedKey);
    add_cred(s, &k3).await;
    assert_eq!(set(&k1.uuid, false).await, Done);
    assert_eq!(set(&k3.uuid, false).await, LastActive);
    assert!(is_active_cred(s, org, "t-ppk").await);
    // The user's own credentials are unaffected by the PAT's.
    assert!(is_active_cred(s, org, "t-pat-key").await);
}

async fn concurrent_deactivations_leave_one_credential(s: &dyn Store) {
    use keyfold_domain::ports::CredentialToggle::{Done, LastActive};
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    for round in 0..20 {
        let u = user(org, &format!("race{round}@acme.test"), T0);
        s.create_user(&u, None, None).await.unwrap();
        let k1 = cred_of(org, &u.id, &format!("r{round}-a"), CredentialKind::Key);
        let k2 = cred_of(org, &u.id, &format!("r{round}-b"), CredentialKind::Fido2);
        add_cred(s, &k1).await;
        add_cred(s, &k2).await;
        let (x, y) = tokio::join!(
            s.set_credential_active(org, &u.id, &k1.uuid, false),
            s.set_credential_active(org, &u.id, &k2.uuid, false),
        );
        let mut got = vec![x.unwrap(), y.unwrap()];
        got.sort_by_key(|t| format!("{t:?}"));
        assert_eq!(got, vec![Done, LastActive], "round {round}");
        let active = s
            .list_credentials(org, &u.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.is_active)
            .count();
        assert_eq!(active, 1, "round {round}: one login credential stays");
    }
}

async fn sign_counts_only_move_forward(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "count@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let k = cred_of(org, &u.id, "counted", CredentialKind::Fido2);
    add_cred(s, &k).await;
    let count = || async {
        let by_id = s.find_credential(org, "counted").await.unwrap().unwrap();
        let listed = s.list_credentials(org, &u.id).await.unwrap();
        assert!(
            listed.contains(&by_id),
            "the user's credential list is up to date"
        );
        by_id.sign_count
    };
    assert_eq!(count().await, 0);
    assert!(s.advance_sign_count(&k.uuid, 5).await.unwrap());
    assert_eq!(count().await, 5);
    assert!(!s.advance_sign_count(&k.uuid, 5).await.unwrap(), "equal");
    assert!(
        !s.advance_sign_count(&k.uuid, 3).await.unwrap(),
        "backwards"
    );
    assert_eq!(count().await, 5, "a refused counter changes nothing");
    assert!(s.advance_sign_count(&k.uuid, 6).await.unwrap());
    assert_eq!(count().await, 6);
    assert!(!s.advance_sign_count("cr-missing", 7).await.unwrap());
    // 0 after a counter was seen is a clone reset (WebAuthn §7.2 step 21): refused, unchanged.
    assert!(!s.advance_sign_count(&k.uuid, 0).await.unwrap());
    assert_eq!(
        count().await,
        6,
        "a zero counter never rewinds a stored one"
    );
    // An authenticator without a counter reports 0 every time, and passes.
    let k0 = cred_of(org, &u.id, "uncounted", CredentialKind::Fido2);
    add_cred(s, &k0).await;
    for _ in 0..3 {
        assert!(s.advance_sign_count(&k0.uuid, 0).await.unwrap());
    }
    assert_eq!(
        s.find_credential(org, "uncounted")
            .await
            .unwrap()
            .unwrap()
            .sign_count,
        0
    );
    // Racing uses with the same counter: exactly one passes.
    for round in 0..10 {
        let target = 1000 + round * 10;
        let wins = join_all((0..8).map(|_| s.advance_sign_count(&k.uuid, target))).await;
        assert_eq!(
            wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(),
            1,
            "round {round}"
        );
        assert_eq!(count().await, target);
    }
    // Racing different counters: the highest always passes and is what stays.
    let wins = join_all((2000..2008).map(|n| s.advance_sign_count(&k.uuid, n))).await;
    assert!(*wins.last().unwrap().as_ref().unwrap());
    assert!(wins.iter().all(|w| w.is_ok()));
    assert_eq!(count().await, 2007);
}

async fn quiet_codes_replace_and_are_found_by_hash(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "code@acme.test", T0);
    let v = user(org, "other@acme.test", T0);
    let reg = code(org, &u.id, T0);
    s.create_user(&u, Some(&reg), None).await.unwrap();
    s.create_user(&v, None, None).await.unwrap();
    let k1 = credential_code(org, &u.id, "h-q-1", T0);
    s.replace_code_quietly(&k1).await.unwrap();
    let find = |hash: &str, purpose: CodePurpose, now: Timestamp| {
        let hash = hash.to_string();
        async move { s.find_live_code(&hash, purpose, now).await.unwrap() }
    };
    assert_eq!(
        find("h-q-1", CodePurpose::Credential, T0).await,
        Some(k1.clone())
    );
    assert_eq!(find("h-q-1", CodePurpose::Registration, T0).await, None);
    assert_eq!(find("h-q-1", CodePurpose::Login, T0).await, None);
    assert_eq!(
        find(
            "h-q-1",
            CodePurpose::Credential,
            k1.expires_at.plus_secs(-1)
        )
        .await,
        Some(k1.clone())
    );
    assert_eq!(
        find("h-q-1", CodePurpose::Credential, k1.expires_at).await,
        None
    );
    assert_eq!(find("h-unknown", CodePurpose::Credential, T0).await, None);
    // The registration code's hash is found under its own purpose only.
    assert_eq!(
        find(&reg.code_hash, CodePurpose::Registration, T0).await,
        Some(reg.clone())
    );
    assert_eq!(
        find(&reg.code_hash, CodePurpose::Credential, T0).await,
        None
    );

    // A new quiet code burns the user's earlier ones of that purpose — nothing else.
    let kv = credential_code(org, &v.id, "h-q-v", T0);
    s.replace_code_quietly(&kv).await.unwrap();
    let k2 = credential_code(org, &u.id, "h-q-2", T0.plus_secs(1));
    s.replace_code_quietly(&k2).await.unwrap();
    let now = T0.plus_secs(2);
    assert_eq!(find("h-q-1", CodePurpose::Credential, now).await, None);
    assert_eq!(
        find("h-q-2", CodePurpose::Credential, now).await,
        Some(k2.clone())
    );
    assert_eq!(
        s.live_code(org, &u.id, CodePurpose::Credential, now)
            .await
            .unwrap(),
        Some(k2.clone())
    );
    assert_eq!(
        find("h-q-v", CodePurpose::Credential, now).await,
        Some(kv.clone())
    );
    assert_eq!(
        s.live_code(org, &u.id, CodePurpose::Registration, now)
            .await
            .unwrap(),
        Some(reg.clone())
    );
    // A spent code is not found.
    let c = credential_challenge(org, &u.id, T0.plus_secs(60));
    assert!(
        s.insert_challenge_spending_code(&c, &k2.id, now)
            .await
            .unwrap()
    );
    assert_eq!(find("h-q-2", CodePurpose::Credential, now).await, None);
    // Emailed codes (replace_code) burn quiet ones of the same purpose too.
    let k3 = credential_code(org, &u.id, "h-q-3", T0.plus_secs(3));
    s.replace_code_quietly(&k3).await.unwrap();
    let k4 = credential_code(org, &u.id, "h-q-4", T0.plus_secs(4));
    s.replace_code(&k4, &mail(T0)).await.unwrap();
    assert_eq!(
        find("h-q-3", CodePurpose::Credential, T0.plus_secs(5)).await,
        None
    );
    assert_eq!(
        find("h-q-4", CodePurpose::Credential, T0.plus_secs(5)).await,
        Some(k4.clone())
    );
}

async fn challenges_bought_with_a_code(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let u = user(org, "buy@acme.test", T0);
    s.create_user(&u, None, None).await.unwrap();
    let k = credential_code(org, &u.id, "h-b-1", T0);
    s.replace_code_quietly(&k).await.unwrap();

    let c1 = credential_challenge(org, &u.id, T0.plus_secs(60));
    assert!(
        s.insert_challenge_spending_code(&c1, &k.id, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.get_challenge(&c1.id).await.unwrap(), Some(c1.clone()));
    // The code buys one challenge only.
    let c2 = credential_challenge(org, &u.id, T0.plus_secs(60));
    assert!(
        !s.insert_challenge_spending_code(&c2, &k.id, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.get_challenge(&c2.id).await.unwrap(), None);
    // Nor does an expired or unknown code.
    let k2 = credential_code(org, &u.id, "h-b-2", T0);
    s.replace_code_quietly(&k2).await.unwrap();
    assert!(
        !s.insert_challenge_spending_code(&c2, &k2.id, k2.expires_at)
            .await
            .unwrap()
    );
    assert!(
        !s.insert_challenge_spending_code(&c2, "co-missing", T0)
            .await
            .unwrap()
    );
    assert_eq!(s.get_challenge(&c2.id).await.unwrap(), None);
    // A challenge that cannot be stored (its id is taken) leaves the code unspent.
    let k3 = credential_code(org, &u.id, "h-b-3", T0);
    s.replace_code_quietly(&k3).await.unwrap();
    let again = Challenge {
        challenge: "other".into(),
        ..c1.clone()
    };
    assert!(
        s.insert_challenge_spending_code(&again, &k3.id, T0)
            .await
            .is_err()
    );
    assert_eq!(s.get_challenge(&c1.id).await.unwrap(), Some(c1.clone()));
    assert_eq!(
        s.find_live_code("h-b-3", CodePurpose::Credential, T0)
            .await
            .unwrap(),
        Some(k3.clone())
    );
    // Racing buyers: one challenge.
    let racers: Vec<Challenge> = (0..6)
        .map(|_| credential_challenge(org, &u.id, T0.plus_secs(60)))
        .collect();
    let wins = join_all(
        racers
            .iter()
            .map(|c| s.insert_challenge_spending_code(c, &k3.id, T0)),
    )
    .await;
    assert_eq!(wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    let mut stored = 0;
    for c in &racers {
        if let Some(got) = s.get_challenge(&c.id).await.unwrap() {
            assert_eq!(&got, c);
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    // A challenge without detail round-trips as well.
    let plain = challenge(org, &u.id, ChallengeKind::Credential, T0.plus_secs(60));
    s.insert_challenge(&plain).await.unwrap();
    assert_eq!(s.get_challenge(&plain.id).await.unwrap(), Some(plain));
}

async fn apps_and_their_nonces(s: &dyn Store) {
    let b = org_fixture();
    s.bootstrap(&b).await.unwrap();
    let org = b.org.id.as_str();
    let server = App {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::App),
        org_id: org.into(),
        name: "backend".into(),
        kind: AppKind::ServerSide,
        expected_origin: None,
        expected_rp_id: None,
        public_key: Some(test_pem()),
        is_active: true,
        created_at: T0.plus_secs(1),
    };
    let client = App {
        id: keyfold_domain::ids::new_id(keyfold_domain::ids::IdKind::App),
        name: "wallet".into(),
        kind: AppKind::ClientSide,
        expected_origin: Some("https://wallet.example.com".into()),
        expected_rp_id: Some("example.com".into()),
        public_key: None,
        is_active: false,
        created_at: T0.plus_secs(2),
        ..server.clone()
    };
    s.insert_app(&server).await.unwrap();
    s.insert_app(&client).await.unwrap();
    assert_eq!(s.get_app(&server.id).await.unwrap(), Some(server.clone()));
    assert_eq!(s.get_app(&client.id).await.unwrap(), Some(client.clone()));
    assert_eq!(s.get_app(&b.app.id).await.unwrap(), Some(b.app.clone()));
    assert_eq!(s.get_app("ap-missing").await.unwrap(), None);
    assert_eq!(
        s.list_apps(org).await.unwrap(),
        vec![b.app.clone(), server.clone(), client.clone()]
    );
    assert!(s.insert_app(&server).await.is_err(), "ids are unique");

    let exp = T0.plus_secs(300);
    assert!(s.use_app_nonce(&server.id, "n1", exp, T0).await.unwrap());
    assert!(
        !s.use_app_nonce(&server.id, "n1", exp, T0.plus_secs(1))
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        s.use_app_nonce(&client.id, "n1", exp, T0.plus_secs(1))
            .await
            .unwrap(),
        "another app's nonce"
    );
    assert!(
        s.use_app_nonce(&server.id, "n2", exp, T0.plus_secs(1))
            .await
            .unwrap()
    );
    // Remembered while the signature could still be fresh…
    assert!(
        !s.use_app_nonce(&server.id, "n1", T0.plus_secs(600), T0.plus_secs(299))
            .await
            .unwrap()
    );
    // …and forgotten once its window has passed (the date check refuses it by then).
    assert!(
        s.use_app_nonce(&server.id, "n1", T0.plus_secs(900), T0.plus_secs(301))
            .await
            .unwrap()
    );
    assert!(
        !s.use_app_nonce(&server.id, "n1", T0.plus_secs(900), T0.plus_secs(302))
            .await
            .unwrap()
    );

    // Racing uses of one nonce: exactly one passes.
    for round in 0..5 {
        let n = format!("race-{round}");
        let wins = join_all(
            (0..10)
                .map(|_| s.use_app_nonce(&server.id, &n, T0.plus_secs(2000), T0.plus_secs(1000))),
        )
        .await;
        assert_eq!(
            wins.into_iter().filter(|w| *w.as_ref().unwrap()).count(),
            1,
            "round {round}"
        );
    }
    // …also while concurrent callers are forgetting the same expired nonces.
    for round in 0..3i64 {
        let base = 3000 + round * 1000;
        for i in 0..20 {
            assert!(
                s.use_app_nonce(
                    &server.id,
                    &format!("old-{round}-{i}"),
                    T0.plus_secs(base + 10),
                    T0.plus_secs(base)
                )
                .await
                .unwrap()
            );
        }
        let later = T0.plus_secs(base + 20);
        let n = format!("fresh-{round}");
        let names: Vec<String> = (0..10).map(|i| format!("distinct-{round}-{i}")).collect();
        let same =
            join_all((0..10).map(|_| s.use_app_nonce(&server.id, &n, later.plus_secs(300), later)));
        let distinct = join_all(
            names
                .iter()
                .map(|d| s.use_app_nonce(&client.id, d, later.plus_secs(300), later)),
        );
        let (same, distinct) = tokio::join!(same, distinct);
        let same: Vec<bool> = same.into_iter().map(|w| w.unwrap()).collect();
        let distinct: Vec<bool> = distinct.into_iter().map(|w| w.unwrap()).collect();
        assert_eq!(same.iter().filter(|w| **w).count(), 1, "round {round}");
        assert!(distinct.iter().all(|w| *w), "round {round}");
        // The expired ones were forgotten: usable again.
        assert!(
            s.use_app_nonce(
                &server.id,
                &format!("old-{round}-0"),
                later.plus_secs(300),
                later
            )
            .await
            .unwrap()
        );
    }
}
