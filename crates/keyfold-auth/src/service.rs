//! The authentication flows.
//!
//! ```text
//! login      POST /auth/login/init  → challenge (for the user's credentials)
//!            POST /auth/login       → credential signed {"type":"key.get","challenge"} → JWT
//! request    Authorization: Bearer JWT → authenticate(): signature, expiry, the token's row
//!            (revoked? identity and org active?) and the identity's operations, per request
//! action     POST /auth/action/init → challenge bound to method + path + sha256(body)
//!            POST /auth/action      → signed challenge → single-use user action token
//!            x-dfns-useraction: token on the mutating request → check_action() opens it
//!            and compares method, path and body with what was signed; consume_action()
//!            spends it once (or the domain does, in the transaction of its first write)
//! ```
//!
//! Every secret we hand out is stored only as a hash; action challenges and user action
//! tokens are not stored at all but sealed under the server secret, and recorded when spent.
//! Every single-use thing is spent by a conditional update or a unique insert (so two racing
//! requests cannot both win), and every failure of proof is
//! `Unauthenticated` with a message that says what was wrong but never leaks whether a user
//! exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;

use keyfold_domain::authz::Principal;
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{
    AccessToken, Challenge, ChallengeKind, CodePurpose, Credential, TokenKind, User, UserAction,
};
use keyfold_domain::ports::Store;
use keyfold_domain::secrets::{random_b64, sha256_hex};
use keyfold_domain::time::{Clock, Timestamp};
use keyfold_domain::{DomainError, validate};
use keyfold_types::auth::{
    AllowCredential, AllowCredentialWithKey, AllowCredentials, Assertion, Attestation,
    ChallengeResponse, CreateLoginChallengeBody, CreateUserActionChallengeBody,
    CreateUserActionSignatureBody, CredentialFactor, CredentialKind, LoginBody,
    SupportedCredentialKind, UserVerification,
};
use keyfold_types::limits;
use sha2::{Digest, Sha256};

use crate::credential::{KeyAssertion, PublicKey};
use crate::jwt::{self, Audience, Claims, KeySet, VerifyError};
use crate::sealer::Sealer;

pub(crate) type Result<T> = std::result::Result<T, DomainError>;

/// Lifetimes and limits of the flows.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Login session lifetime.
    pub token_ttl_secs: i64,
    /// How long a login / action / registration challenge may be answered.
    pub challenge_ttl_secs: i64,
    /// How long a user action token may be used.
    pub user_action_ttl_secs: i64,
    /// Largest request body a user action may cover.
    pub max_payload_bytes: usize,
    /// WebAuthn relying party id and name shown in challenges.
    pub rp_id: String,
    pub rp_name: String,
}

/// How often an unknown `kid` may trigger a key reload (another replica may have rotated).
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct AuthService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: AuthSettings,
    pub(crate) sealer: Sealer,
    keys: RwLock<Arc<KeySet>>,
    last_reload: Mutex<Option<Instant>>,
    /// Access tokens whose signature already verified, by SHA-256 of the token. A JWT's
    /// claims never change, so re-verifying the signature on every request buys nothing;
    /// expiry is still checked per request and revocation lives in the token's row.
    verified: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
    /// Action challenges this process traded for a token, until they expire: a challenge is
    /// answered once per process without a write. What makes an action single use for
    /// every process sharing the database is the unique `user_actions.challenge` at the
    /// spend.
    answered: Mutex<Answered>,
    /// When this service started: on a database this process writes alone, every challenge
    /// issued since was answered (if at all) through [`Self::first_answer`].
    started: Timestamp,
}

/// See [`AuthService::first_answer`].
#[derive(Debug, Default)]
struct Answered {
    expires: HashMap<String, Timestamp>,
    /// The size at which expired entries are dropped next (grows with the live set, so
    /// pruning stays linear overall).
    prune_at: usize,
}

/// Answered challenges remembered before expired ones are dropped.
const ANSWERED_PRUNE_AT: usize = 10_000;

/// Verified tokens remembered before the cache starts over.
const VERIFIED_CAPACITY: usize = 50_000;

impl AuthService {
    /// Loads the JWT key set, creating the first key if the store has none.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sealer: Sealer,
        settings: AuthSettings,
    ) -> Result<Self> {
        let mut records = store.jwt_keys().await?;
        if !records.iter().any(|r| r.is_current) {
            store
                .rotate_jwt_key(&jwt::new_key_record(&sealer, clock.now())?)
                .await?;
            records = store.jwt_keys().await?;
        }
        let keys = KeySet::from_records(&records, &sealer)?;
        let started = clock.now();
        Ok(Self {
            store,
            clock,
            settings,
            sealer,
            keys: RwLock::new(Arc::new(keys)),
            last_reload: Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
            answered: Mutex::new(Answered::default()),
            started,
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Makes a new signing key current. Tokens signed by older keys keep verifying.
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let record = jwt::new_key_record(&self.sealer, self.clock.now())?;
        let kid = record.kid.clone();
        self.store.rotate_jwt_key(&record).await?;
        self.reload_keys().await?;
        Ok(kid)
    }

    async fn reload_keys(&self) -> Result<()> {
        let records = self.store.jwt_keys().await?;
        let set = KeySet::from_records(&records, &self.sealer)?;
        if let Ok(mut w) = self.keys.write() {
            *w = Arc::new(set);
        }
        if let Ok(mut v) = self.verified.lock() {
            v.clear();
        }
        Ok(())
    }

    fn key_set(&self) -> Result<Arc<KeySet>> {
        self.keys
            .read()
            .map(|k| Arc::clone(&k))
            .map_err(|_| DomainError::internal("jwt key set lock poisoned"))
    }

    pub(crate) fn issue(&self, claims: &Claims) -> Result<String> {
        self.key_set()?.issue(claims)
    }

    /// Verifies a JWT, reloading the key set (rate limited) when it names a key we have not
    /// loaded yet.
    pub(crate) async fn verify_jwt(&self, token: &str, aud: Audience) -> Result<Claims> {
        let now = self.clock.now();
        match self.key_set()?.verify(token, aud, now) {
            Ok(c) => return Ok(c),
            Err(VerifyError::Invalid(why)) => return Err(DomainError::unauthenticated(why)),
            Err(VerifyError::UnknownKey) => {}
        }
        let may_reload = match self.last_reload.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= KEY_RELOAD_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if may_reload {
            self.reload_keys().await?;
        }
        self.key_set()?
            .verify(token, aud, now)
            .map_err(|e| match e {
                VerifyError::Invalid(why) => DomainError::unauthenticated(why),
                VerifyError::UnknownKey => {
                    DomainError::unauthenticated("the token was not issued by this server")
                }
            })
    }

    // ---------------------------------------------------------------- login

    /// `POST /auth/login/init`. An unknown or unusable username gets a challenge that no
    /// credential can answer, indistinguishable from a real one.
    pub async fn login_init(&self, body: CreateLoginChallengeBody) -> Result<ChallengeResponse> {
        let username = body
            .username
            .as_deref()
            .ok_or_else(|| DomainError::invalid("username is required"))?;
        let username = validate::required_text("username", username, limits::EMAIL_MAX)?;
        let org_id = validate::required_text("orgId", &body.org_id, limits::ID_MAX)?;
        let now = self.clock.now();
        let user = self.login_candidate(&org_id, &username).await?;
        let challenge = random_b64(32);
        let Some(user) = user else {
            // Same answers as for a real user: a code can only be wrong here.
            if body.login_code.is_some() {
                return Err(bad_login_code());
            }
            // A user who cannot log in still seems to have a key: the same made-up credential
            // id on every ask (and after restarts), so the answer does not tell who exists.
            let decoy = self.decoy_credential(&org_id, &username, now);
            return Ok(self.challenge_response(
                new_id(IdKind::Challenge),
                challenge,
                std::slice::from_ref(&decoy),
                false,
            ));
        };
        let creds = usable_by(self.store.list_credentials(&org_id, &user.id).await?, None);
        // A PasswordProtectedKey's encrypted key is handed out only to whoever proves the
        // login code mailed to the user (`POST /auth/login/code`); a wrong code is refused
        // and counted, like a registration code.
        // The code's id when it is right: it is spent with the challenge it buys.
        let reveal = match body.login_code.as_deref() {
            None => None,
            Some(code) => {
                let live = self
                    .store
                    .live_code(&org_id, &user.id, CodePurpose::Login, now)
                    .await?
                    .ok_or_else(bad_login_code)?;
                if !self.guess_code(&live, code).await? {
                    return Err(bad_login_code());
                }
                Some(live.id)
            }
        };
        let record = Challenge {
            id: new_id(IdKind::Challenge),
            org_id: org_id.clone(),
            kind: ChallengeKind::Login,
            user_id: user.id.clone(),
            challenge: challenge.clone(),
            token_id: None,
            http_method: None,
            http_path: None,
            payload_hash: None,
            detail: None,
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        // One login code, one challenge with the encrypted key: spent atomically with it.
        match &reveal {
            None => self.store.insert_challenge(&record).await?,
            Some(code_id) => {
                if !self
                    .store
                    .insert_challenge_spending_code(&record, code_id, now)
                    .await?
                {
                    return Err(bad_login_code());
                }
            }
        }
        // A PasswordProtectedKey's encrypted key is not handed to whoever knows a username.
        Ok(self.challenge_response(record.id, challenge, &creds, reveal.is_some()))
    }

    /// `POST /auth/login/code`: mails a login code to a user with a PasswordProtectedKey
    /// (it unlocks the encrypted key in `POST /auth/login/init`). The answer never tells
    /// whether the user exists.
    pub async fn send_login_code(&self, org_id: &str, username: &str) -> Result<()> {
        let username = validate::required_text("username", username, limits::EMAIL_MAX)?;
        let org_id = validate::required_text("orgId", org_id, limits::ID_MAX)?;
        let Some(user) = self.login_candidate(&org_id, &username).await? else {
            return Ok(());
        };
        let has_protected_key = self
            .store
            .list_credentials(&org_id, &user.id)
            .await?
            .iter()
            .any(|c| c.is_active && c.kind == CredentialKind::PasswordProtectedKey);
        if !has_protected_key {
            return Ok(());
        }
        let now = self.clock.now();
        // At most one mail per user every LOGIN_CODE_RESEND_SECS while a code is unused: the
        // endpoint needs no authentication, so it must not be a way to flood a mailbox. The
        // live code stays valid; the answer is the same.
        if let Some(live) = self
            .store
            .live_code(&org_id, &user.id, CodePurpose::Login, now)
            .await?
            // A code whose guesses are used up cannot lock its user out of a new one.
            && live.attempts < crate::registration::MAX_CODE_ATTEMPTS
            && now < live.created_at.plus_secs(LOGIN_CODE_RESEND_SECS)
        {
            return Ok(());
        }
        let code = keyfold_domain::secrets::new_code();
        let record = keyfold_domain::model::OneTimeCode {
            id: new_id(IdKind::Code),
            org_id: org_id.clone(),
            user_id: user.id.clone(),
            purpose: CodePurpose::Login,
            code_hash: keyfold_domain::secrets::code_hash(&code),
            attempts: 0,
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        let email = keyfold_domain::model::Email {
            to: user.username.clone(),
            subject: "Your Keyfold login code".into(),
            body: format!(
                "Your login code is: {code}\n\n\
                 Organization: {org_id}\nUsername: {username}\n\n\
                 It unlocks your password-protected key and expires at {expires}.\n\
                 If you did not ask for it, ignore this message.\n",
                code = &*code,
                username = user.username,
                expires = record.expires_at.to_iso(),
            ),
        };
        let mail = keyfold_domain::model::OutboxMessage {
            id: new_id(IdKind::Outbox),
            kind: "email".into(),
            payload: serde_json::to_string(&email)
                .map_err(|e| DomainError::internal(format!("encoding email: {e}")))?,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            created_at: now,
        };
        self.store.replace_code(&record, &mail).await?;
        Ok(())
    }

    async fn login_candidate(&self, org_id: &str, username: &str) -> Result<Option<User>> {
        if !looks_like(IdKind::Org, org_id) {
            return Ok(None);
        }
        match self.store.get_org(org_id).await? {
            Some(o) if o.is_active => {}
            _ => return Ok(None),
        }
        let user = self
            .store
            .find_user_by_username(org_id, &username.to_ascii_lowercase())
            .await?;
        Ok(user.filter(|u| u.is_active && u.is_registered && !u.is_service_account))
    }

    /// `POST /auth/login`: the signed login challenge buys an access token.
    pub async fn login(
        &self,
        body: LoginBody,
        app: Option<&crate::apps::AppContext>,
    ) -> Result<String> {
        let challenge = self
            .live_challenge(&body.challenge_identifier, ChallengeKind::Login)
            .await?;
        if app.is_some_and(|a| a.org_id != challenge.org_id) {
            return Err(DomainError::unauthenticated(
                "the application belongs to another organization",
            ));
        }
        let cred = self
            .verify_first_factor(
                &challenge.org_id,
                &challenge.user_id,
                &challenge.challenge,
                &body.first_factor,
                None,
            )
            .await?;
        // A user with a Totp credential logs in with both factors. A wrong second factor
        // burns the challenge, so one signed first factor buys one guess, not a million.
        if let Err(e) = self
            .verify_second_factor(
                &challenge.org_id,
                &challenge.user_id,
                body.second_factor.as_ref(),
                true,
            )
            .await
        {
            self.store
                .use_challenge(&challenge.id, self.clock.now())
                .await?;
            return Err(e);
        }
        let now = self.clock.now();
        if !self.store.use_challenge(&challenge.id, now).await? {
            return Err(DomainError::unauthenticated(
                "the login challenge was already used or has expired",
            ));
        }
        let user = self
            .store
            .get_user(&challenge.org_id, &cred.user_id)
            .await?
            .filter(|u| u.is_active && !u.is_archived)
            .ok_or_else(|| DomainError::unauthenticated("the user is not active"))?;
        self.issue_session(&user, now, app.map(|a| a.app_id.clone()))
            .await
    }

    pub(crate) async fn issue_session(
        &self,
        user: &User,
        now: Timestamp,
        app_id: Option<String>,
    ) -> Result<String> {
        let token = AccessToken {
            id: new_id(IdKind::Token),
            org_id: user.org_id.clone(),
            user_id: user.id.clone(),
            kind: TokenKind::Token,
            name: "login".into(),
            is_active: true,
            expires_at: Some(now.plus_secs(self.settings.token_ttl_secs)),
            revoked_at: None,
            external_id: None,
            app_id,
            created_at: now,
        };
        self.store.insert_token(&token).await?;
        self.issue(&Claims {
            iss: jwt::ISSUER.into(),
            aud: Audience::Api.as_str().into(),
            sub: user.id.clone(),
            jti: token.id.clone(),
            iat: now.millis() / 1000,
            exp: (now.millis() / 1000) + self.settings.token_ttl_secs,
            username: user.username.clone(),
            app_metadata: jwt::AppMetadata {
                org_id: user.org_id.clone(),
                user_id: user.id.clone(),
                token_kind: TokenKind::Token.as_str().into(),
            },
        })
    }

    /// `PUT /auth/logout`: this token, or every login session of the caller, stops working on
    /// the next request.
    pub async fn logout(&self, principal: &Principal, all_sessions: bool) -> Result<()> {
        // A service account's (or PAT's) token is its only credential to the API: logging
        // it out would brick the identity. Those are deactivated or deleted instead.
        if principal.token_kind != TokenKind::Token {
            return Err(DomainError::invalid(
                "only login sessions log out; deactivate or delete a service account instead",
            ));
        }
        let now = self.clock.now();
        if all_sessions {
            self.store
                .revoke_sessions_of(&principal.user_id, now)
                .await?;
        }
        self.store.revoke_token(&principal.token_id, now).await?;
        Ok(())
    }

    // ---------------------------------------------------------------- per request

    /// Turns a bearer token into a [`Principal`]: signature and expiry, then the token's row
    /// (revoked, deactivated), the identity and its organization (active), and the operations
    /// granted — all checked on every request, so a change counts on the very next one.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        let claims = self.verified_api_token(bearer).await?;
        let session =
            self.store.session(&claims.jti).await?.ok_or_else(|| {
                DomainError::unauthenticated("the token is not known to this server")
            })?;
        let now = self.clock.now();
        let t = &session.token;
        if t.org_id != claims.app_metadata.org_id || t.user_id != claims.sub {
            return Err(DomainError::unauthenticated(
                "the token does not match its record",
            ));
        }
        if t.revoked_at.is_some() {
            return Err(DomainError::unauthenticated(
                "the token was revoked (logged out)",
            ));
        }
        if !t.is_active {
            return Err(DomainError::unauthenticated("the token is deactivated"));
        }
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(DomainError::unauthenticated("the token has expired"));
        }
        if !session.user_active || session.user_archived {
            return Err(DomainError::unauthenticated("the identity is deactivated"));
        }
        if !session.org_active {
            return Err(DomainError::unauthenticated(
                "the organization is deactivated",
            ));
        }
        // A token obtained under a server-side application only works on requests that
        // application signed (checked where the request's application is known).
        let bound = match &t.app_id {
            None => None,
            Some(app_id) => match self.store.get_app(app_id).await? {
                // Fail closed: a token bound to an application that is gone works nowhere.
                None => {
                    return Err(DomainError::unauthenticated(
                        "the token's application no longer exists",
                    ));
                }
                Some(a) if a.kind == keyfold_domain::model::AppKind::ServerSide => Some(a.id),
                Some(_) => None,
            },
        };
        Ok(Principal::new(
            t.org_id.clone(),
            t.user_id.clone(),
            session.username,
            session.user_kind,
            session.is_service_account,
            t.id.clone(),
            t.kind,
            session.operations,
        )
        .bound_to(bound))
    }

    /// [`Self::verify_jwt`] for API tokens, remembering tokens that verified.
    async fn verified_api_token(&self, bearer: &str) -> Result<Arc<Claims>> {
        let key: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        let hit = self.verified.lock().ok().and_then(|m| m.get(&key).cloned());
        let claims = match hit {
            Some(c) => c,
            None => {
                let c = Arc::new(self.verify_jwt(bearer, Audience::Api).await?);
                if let Ok(mut m) = self.verified.lock() {
                    if m.len() >= VERIFIED_CAPACITY {
                        m.clear();
                    }
                    m.insert(key, c.clone());
                }
                c
            }
        };
        if claims.exp.saturating_mul(1000) <= self.clock.now().millis() {
            return Err(DomainError::unauthenticated("the token has expired"));
        }
        Ok(claims)
    }

    // ---------------------------------------------------------------- user actions

    /// `POST /auth/action/init`: a challenge bound to exactly the request the caller intends.
    pub async fn action_init(
        &self,
        principal: &Principal,
        body: CreateUserActionChallengeBody,
    ) -> Result<ChallengeResponse> {
        let path = &body.user_action_http_path;
        if !path.starts_with('/')
            || path.len() > 2048
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(DomainError::invalid(
                "userActionHttpPath must be an absolute path without whitespace (at most 2048 characters)",
            ));
        }
        if body.user_action_payload.len() > self.settings.max_payload_bytes {
            return Err(DomainError::invalid(
                "userActionPayload is larger than the largest accepted body",
            ));
        }
        let creds = usable_by(
            self.store
                .list_credentials(&principal.org_id, &principal.user_id)
                .await?,
            pat_of(principal),
        );
        let now = self.clock.now();
        let challenge = random_b64(32);
        let record = Challenge {
            id: new_id(IdKind::Challenge),
            org_id: principal.org_id.clone(),
            kind: ChallengeKind::Action,
            user_id: principal.user_id.clone(),
            challenge: challenge.clone(),
            token_id: Some(principal.token_id.clone()),
            http_method: Some(body.user_action_http_method.as_str().to_string()),
            http_path: Some(path.clone()),
            payload_hash: Some(crate::payload::payload_digest(
                body.user_action_payload.as_bytes(),
            )),
            detail: None,
            expires_at: now.plus_secs(self.settings.challenge_ttl_secs),
            used_at: None,
            created_at: now,
        };
        // Not stored: sealed into the identifier the client hands back (see
        // `seal_action_challenge`), so opening an action costs no write.
        let identifier = self.seal_action_challenge(&record)?;
        Ok(self.challenge_response(identifier, challenge, &creds, true))
    }

    /// An action challenge travels sealed (XChaCha20-Poly1305 under the server secret) in its
    /// own identifier instead of a row: only this server can make or read one, and nothing
    /// in it can be changed. It is single use because the action that answers it is recorded
    /// under the unique `user_actions.challenge` (the store's `insert_user_action`).
    fn seal_action_challenge(&self, c: &Challenge) -> Result<String> {
        let body = SealedActionChallenge {
            id: c.id.clone(),
            org: c.org_id.clone(),
            user: c.user_id.clone(),
            token: c.token_id.clone().unwrap_or_default(),
            method: c.http_method.clone().unwrap_or_default(),
            path: c.http_path.clone().unwrap_or_default(),
            payload: c.payload_hash.clone().unwrap_or_default(),
            challenge: c.challenge.clone(),
            expires: c.expires_at.0,
            created: c.created_at.0,
        };
        self.seal_json(ACTION_CHALLENGE_PREFIX, ACTION_CHALLENGE_AAD, &body)
    }

    /// The live action challenge sealed in `identifier`, or 401.
    fn open_action_challenge(&self, identifier: &str) -> Result<Challenge> {
        let invalid = || DomainError::unauthenticated("the challenge is unknown, used or expired");
        let b: SealedActionChallenge = self
            .open_json(ACTION_CHALLENGE_PREFIX, ACTION_CHALLENGE_AAD, identifier)
            .ok_or_else(invalid)?;
        let c = Challenge {
            id: b.id,
            org_id: b.org,
            kind: ChallengeKind::Action,
            user_id: b.user,
            challenge: b.challenge,
            token_id: Some(b.token),
            http_method: Some(b.method),
            http_path: Some(b.path),
            payload_hash: Some(b.payload),
            detail: None,
            expires_at: Timestamp(b.expires),
            used_at: None,
            created_at: Timestamp(b.created),
        };
        if c.expires_at <= self.clock.now() {
            return Err(invalid());
        }
        Ok(c)
    }

    /// `POST /auth/action`: verifies the signed action challenge and returns the single-use
    /// token. The signed material is kept: it is the audit trail and, later, what signers
    /// re-verify before they sign.
    pub async fn action_sign(
        &self,
        principal: &Principal,
        body: CreateUserActionSignatureBody,
    ) -> Result<String> {
        let challenge = self.open_action_challenge(&body.challenge_identifier)?;
        if challenge.user_id != principal.user_id || challenge.org_id != principal.org_id {
            return Err(DomainError::unauthenticated(
                "the action challenge belongs to another identity",
            ));
        }
        if challenge.token_id.as_deref() != Some(principal.token_id.as_str()) {
            return Err(DomainError::unauthenticated(
                "the action challenge was opened with another access token",
            ));
        }
        let cred = self
            .verify_first_factor(
                &challenge.org_id,
                &challenge.user_id,
                &challenge.challenge,
                &body.first_factor,
                pat_of(principal),
            )
            .await?;
        // Actions verify a second factor when one is sent; they do not demand it: the session
        // was opened with both factors, and the official SDKs sign actions with one.
        if let Err(e) = self
            .verify_second_factor(
                &challenge.org_id,
                &challenge.user_id,
                body.second_factor.as_ref(),
                false,
            )
            .await
        {
            // A wrong second factor spends the challenge: a dead action (its token is known
            // to nobody) takes its place.
            self.first_answer(&challenge);
            let now = self.clock.now();
            self.store
                .insert_user_action(&UserAction {
                    id: new_id(IdKind::UserAction),
                    org_id: challenge.org_id.clone(),
                    user_id: challenge.user_id.clone(),
                    token_id: principal.token_id.clone(),
                    token_hash: sha256_hex(random_b64(32).as_bytes()),
                    credential_uuid: cred.uuid.clone(),
                    http_method: challenge.http_method.clone().unwrap_or_default(),
                    http_path: challenge.http_path.clone().unwrap_or_default(),
                    payload_hash: challenge.payload_hash.clone().unwrap_or_default(),
                    challenge: challenge.challenge.clone(),
                    client_data: String::new(),
                    signature: String::new(),
                    expires_at: now,
                    used_at: Some(now),
                    created_at: now,
                })
                .await?;
            return Err(e);
        }
        let (client_data, signature) = match &body.first_factor {
            Assertion::Key {
                credential_assertion: a,
            }
            | Assertion::PasswordProtectedKey {
                credential_assertion: a,
            } => (a.client_data.clone(), a.signature.clone()),
            Assertion::Fido2 {
                credential_assertion: a,
            } => (
                a.client_data.clone(),
                // What a verifier needs besides clientData: authenticatorData.signature.
                format!("{}.{}", a.authenticator_data, a.signature),
            ),
            _ => (String::new(), String::new()),
        };
        // Nothing is written here: the action travels sealed in its token and is recorded
        // when the request it approves spends it (`consume_action`, or the signature row's
        // own transaction). An answered challenge is refused now rather than at the spend.
        // A challenge issued since this process started, on a database it writes alone, can
        // only have been answered here, which `first_answer` knows without a read.
        let answered_here_only = self.store.sole_writer() && challenge.created_at >= self.started;
        // The read comes first: a store error must not leave the challenge marked answered.
        if (!answered_here_only && self.store.challenge_answered(&challenge.challenge).await?)
            || !self.first_answer(&challenge)
        {
            return Err(DomainError::unauthenticated(
                "the action challenge was already used or has expired",
            ));
        }
        let now = self.clock.now();
        let action = UserAction {
            id: new_id(IdKind::UserAction),
            org_id: challenge.org_id.clone(),
            user_id: challenge.user_id.clone(),
            token_id: principal.token_id.clone(),
            token_hash: String::new(),
            credential_uuid: cred.uuid.clone(),
            http_method: challenge.http_method.clone().unwrap_or_default(),
            http_path: challenge.http_path.clone().unwrap_or_default(),
            payload_hash: challenge.payload_hash.clone().unwrap_or_default(),
            challenge: challenge.challenge.clone(),
            client_data,
            signature,
            expires_at: now.plus_secs(self.settings.user_action_ttl_secs),
            used_at: None,
            created_at: now,
        };
        self.seal_user_action(&action)
    }

    /// Records that this process answers `c` now; false when it did before. Expired entries
    /// are dropped as the map grows (an expired challenge cannot be answered anyway).
    fn first_answer(&self, c: &Challenge) -> bool {
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        if answered.expires.len() >= answered.prune_at {
            let now = self.clock.now();
            answered.expires.retain(|_, expires| *expires > now);
            answered.prune_at = (answered.expires.len() * 2).max(ANSWERED_PRUNE_AT);
        }
        answered
            .expires
            .insert(c.challenge.clone(), c.expires_at)
            .is_none()
    }

    /// A user action token is the action itself, sealed (XChaCha20-Poly1305 under the server
    /// secret, its own associated data): only this server can make one, nothing in it can be
    /// changed, and checking it reads nothing. It is single use because spending it inserts
    /// the action under the unique `user_actions.challenge`.
    fn seal_user_action(&self, a: &UserAction) -> Result<String> {
        let body = SealedUserAction {
            id: a.id.clone(),
            org: a.org_id.clone(),
            user: a.user_id.clone(),
            token: a.token_id.clone(),
            credential: a.credential_uuid.clone(),
            method: a.http_method.clone(),
            path: a.http_path.clone(),
            payload: a.payload_hash.clone(),
            challenge: a.challenge.clone(),
            client_data: a.client_data.clone(),
            signature: a.signature.clone(),
            expires: a.expires_at.0,
            created: a.created_at.0,
        };
        let token = self.seal_json(USER_ACTION_PREFIX, USER_ACTION_AAD, &body)?;
        // A token `check_action` would refuse is refused here, where the caller can tell why.
        if token.len() > USER_ACTION_PREFIX.len() + MAX_SEALED_B64 {
            return Err(DomainError::invalid(
                "the signed assertion is too large for a user action token",
            ));
        }
        Ok(token)
    }

    /// `prefix` + base64url of `body` as JSON, sealed under the server secret with `aad`.
    fn seal_json<T: serde::Serialize>(&self, prefix: &str, aad: &[u8], body: &T) -> Result<String> {
        let json = serde_json::to_vec(body)
            .map_err(|e| DomainError::internal(format!("encoding a sealed value: {e}")))?;
        let sealed = self.sealer.seal(aad, &json)?;
        Ok(format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Reads [`Self::seal_json`] output; `None` for anything this server did not seal so.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        aad: &[u8],
        text: &str,
    ) -> Option<T> {
        let b64 = text
            .strip_prefix(prefix)
            .filter(|b| b.len() <= MAX_SEALED_B64)?;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        let json = self.sealer.open(aad, &sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The user action sealed in `token`, or 401. Its `token_hash` is the token's SHA-256.
    fn open_user_action(&self, token: &str) -> Result<UserAction> {
        let b: SealedUserAction = self
            .open_json(USER_ACTION_PREFIX, USER_ACTION_AAD, token)
            .ok_or_else(|| DomainError::unauthenticated("the user action token is not valid"))?;
        Ok(UserAction {
            id: b.id,
            org_id: b.org,
            user_id: b.user,
            token_id: b.token,
            token_hash: sha256_hex(token.as_bytes()),
            credential_uuid: b.credential,
            http_method: b.method,
            http_path: b.path,
            payload_hash: b.payload,
            challenge: b.challenge,
            client_data: b.client_data,
            signature: b.signature,
            expires_at: Timestamp(b.expires),
            used_at: None,
            created_at: Timestamp(b.created),
        })
    }

    /// Checks that the `x-dfns-useraction` token authorizes *this* request — same identity,
    /// method, path and body bytes — without spending it. Call [`Self::consume_action`] once
    /// the request has passed every other check.
    pub async fn check_action(
        &self,
        principal: &Principal,
        token: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<UserAction> {
        if token.is_empty() || token.len() > USER_ACTION_PREFIX.len() + MAX_SEALED_B64 {
            return Err(DomainError::unauthenticated(
                "the x-dfns-useraction header is malformed",
            ));
        }
        let action = self.open_user_action(token)?;
        if action.user_id != principal.user_id || action.org_id != principal.org_id {
            return Err(DomainError::unauthenticated(
                "the user action was signed by another identity",
            ));
        }
        // Bound to the token it was signed through: a PAT's key authorizes that PAT's
        // requests only, and the user's keys never lend a PAT more than it holds.
        if action.token_id != principal.token_id {
            return Err(DomainError::unauthenticated(
                "the user action was signed through another access token",
            ));
        }
        if action.expires_at <= self.clock.now() {
            return Err(DomainError::unauthenticated("the user action has expired"));
        }
        if action.http_method != method {
            return Err(DomainError::unauthenticated(format!(
                "the user action was signed for {} requests, not {method}",
                action.http_method
            )));
        }
        if action.http_path != path {
            return Err(DomainError::unauthenticated(
                "the user action was signed for another path",
            ));
        }
        if action.payload_hash != crate::payload::payload_digest(body) {
            return Err(DomainError::unauthenticated(
                "the request body differs from the one the user action signed",
            ));
        }
        Ok(action)
    }

    /// Spends a checked user action: records it, used. Exactly one of several racing
    /// requests succeeds (the unique `user_actions.challenge`).
    pub async fn consume_action(&self, action: &UserAction) -> Result<()> {
        if self
            .store
            .insert_user_action(&action.spent_at(self.clock.now()))
            .await?
        {
            Ok(())
        } else {
            Err(DomainError::action_already_used())
        }
    }

    // ---------------------------------------------------------------- helpers

    pub(crate) async fn live_challenge(&self, id: &str, kind: ChallengeKind) -> Result<Challenge> {
        let invalid = || DomainError::unauthenticated("the challenge is unknown, used or expired");
        if !looks_like(IdKind::Challenge, id) {
            return Err(invalid());
        }
        let c = self.store.get_challenge(id).await?.ok_or_else(invalid)?;
        if c.kind != kind || c.used_at.is_some() || c.expires_at <= self.clock.now() {
            return Err(invalid());
        }
        Ok(c)
    }

    /// Verifies a first-factor assertion by one of `user_id`'s active credentials — the
    /// user's own ones, or with `pat` that personal access token's key and nothing else.
    pub(crate) async fn verify_first_factor(
        &self,
        org_id: &str,
        user_id: &str,
        challenge: &str,
        assertion: &Assertion,
        pat: Option<&str>,
    ) -> Result<Credential> {
        let (kind, cred_id) = match assertion {
            Assertion::Key {
                credential_assertion: a,
            } => (CredentialKind::Key, &a.cred_id),
            Assertion::PasswordProtectedKey {
                credential_assertion: a,
            } => (CredentialKind::PasswordProtectedKey, &a.cred_id),
            Assertion::Fido2 {
                credential_assertion: a,
            } => (CredentialKind::Fido2, &a.cred_id),
            other => {
                return Err(DomainError::invalid(format!(
                    "credential kind {} cannot answer a login or action challenge; use Key, Fido2 or PasswordProtectedKey",
                    other.kind().as_str()
                )));
            }
        };
        // The identity's own list (which the store may serve from its cache), not a lookup
        // by id: a credential of anyone else is not found either way.
        let cred = self
            .store
            .list_credentials(org_id, user_id)
            .await?
            .into_iter()
            .find(|c| {
                c.cred_id == *cred_id
                    && c.user_id == user_id
                    && c.kind == kind
                    && c.token_id.as_deref() == pat
            })
            .ok_or_else(|| {
                DomainError::unauthenticated(
                    "the credential is not one of this identity's credentials",
                )
            })?;
        if !cred.is_active {
            return Err(DomainError::unauthenticated(
                "the credential is deactivated",
            ));
        }
        match assertion {
            Assertion::Key {
                credential_assertion: a,
            }
            | Assertion::PasswordProtectedKey {
                credential_assertion: a,
            } => {
                let key = PublicKey::from_pem(&cred.public_key).map_err(|_| {
                    DomainError::internal(format!("stored credential {} has a bad key", cred.uuid))
                })?;
                KeyAssertion {
                    client_data_b64: &a.client_data,
                    signature_b64: &a.signature,
                    algorithm: a.algorithm.as_deref(),
                }
                .verify(&key, challenge)?;
            }
            Assertion::Fido2 {
                credential_assertion: a,
            } => {
                let stored = cred.detail.as_deref().ok_or_else(|| {
                    DomainError::internal(format!("passkey {} has no stored record", cred.uuid))
                })?;
                let app = self
                    .app_for_origin(org_id, &crate::webauthn::reported_origin(&a.client_data)?)
                    .await?;
                let counter = crate::webauthn::verify_assertion(
                    &self.settings.rp_name,
                    &app,
                    stored,
                    challenge,
                    &crate::webauthn::Fido2Assertion {
                        cred_id: &a.cred_id,
                        client_data: &a.client_data,
                        authenticator_data: &a.authenticator_data,
                        signature: &a.signature,
                        user_handle: a.user_handle.as_deref(),
                    },
                )?;
                // The library compared with the counter we read; a racing use of a cloned
                // authenticator is caught by the conditional update.
                if !self
                    .store
                    .advance_sign_count(&cred.uuid, i64::from(counter))
                    .await?
                {
                    return Err(DomainError::unauthenticated(
                        "the passkey's signature counter went backwards: a cloned authenticator is refused",
                    ));
                }
            }
            _ => {}
        }
        Ok(cred)
    }

    /// Checks a second factor: a Totp code of the user's active Totp credential, accepted once
    /// (its time step must be past the last one used). `required`: a user with a Totp
    /// credential must send one.
    async fn verify_second_factor(
        &self,
        org_id: &str,
        user_id: &str,
        second: Option<&Assertion>,
        required: bool,
    ) -> Result<()> {
        if second.is_none() && !required {
            // Nothing sent and nothing demanded (a user action): no credential to read.
            return Ok(());
        }
        let creds = self.store.list_credentials(org_id, user_id).await?;
        let totp = creds
            .iter()
            .find(|c| c.is_active && c.kind == CredentialKind::Totp && c.token_id.is_none());
        let code = match second {
            None if required && totp.is_some() => {
                return Err(DomainError::unauthenticated(
                    "this user logs in with a second factor: send secondFactor {kind: Totp, otpCode}",
                ));
            }
            None => return Ok(()),
            Some(Assertion::Totp { otp_code }) => otp_code,
            Some(other) => {
                return Err(DomainError::invalid(format!(
                    "second factor kind {} is not supported; use Totp",
                    other.kind().as_str()
                )));
            }
        };
        let cred = totp.ok_or_else(|| {
            DomainError::invalid("this user has no active Totp credential for a second factor")
        })?;
        let sealed = cred.detail.as_deref().ok_or_else(|| {
            DomainError::internal(format!("Totp credential {} has no secret", cred.uuid))
        })?;
        let now_secs = u64::try_from(self.clock.now().millis() / 1000).unwrap_or_default();
        let step = crate::totp::check(&self.sealer, user_id, sealed, code, now_secs)?
            .ok_or_else(|| DomainError::unauthenticated("the one-time password is not valid"))?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if step <= cred.sign_count || !self.store.advance_sign_count(&cred.uuid, step).await? {
            return Err(DomainError::unauthenticated(
                "this one-time password was already used; wait for the next one",
            ));
        }
        Ok(())
    }

    /// The key credential a login challenge offers for a username that cannot log in.
    fn decoy_credential(&self, org_id: &str, username: &str, now: Timestamp) -> Credential {
        Credential {
            uuid: String::new(),
            org_id: org_id.to_string(),
            user_id: String::new(),
            cred_id: self
                .sealer
                .stable_id(&["login decoy credential", org_id, username]),
            kind: CredentialKind::Key,
            name: String::new(),
            public_key: String::new(),
            algorithm: None,
            is_active: true,
            sign_count: 0,
            encrypted_private_key: None,
            token_id: None,
            detail: None,
            created_at: now,
        }
    }

    fn challenge_response(
        &self,
        id: String,
        challenge: String,
        creds: &[Credential],
        reveal_encrypted_keys: bool,
    ) -> ChallengeResponse {
        let active = creds.iter().filter(|c| c.is_active);
        let key = active
            .clone()
            .filter(|c| c.kind == CredentialKind::Key)
            .map(|c| AllowCredential::public_key(c.cred_id.clone()))
            .collect();
        let webauthn = active
            .clone()
            .filter(|c| c.kind == CredentialKind::Fido2)
            .map(|c| AllowCredential::public_key(c.cred_id.clone()))
            .collect();
        let protected: Vec<AllowCredentialWithKey> = active
            .clone()
            .filter(|c| c.kind == CredentialKind::PasswordProtectedKey)
            .filter_map(|c| {
                Some(AllowCredentialWithKey {
                    kind: "public-key".into(),
                    id: c.cred_id.clone(),
                    encrypted_private_key: c.encrypted_private_key.clone()?,
                })
            })
            .collect();
        let mut kinds: Vec<CredentialKind> = Vec::new();
        for c in active {
            let k = c.kind;
            let first_factor = matches!(
                k,
                CredentialKind::Key | CredentialKind::Fido2 | CredentialKind::PasswordProtectedKey
            );
            if first_factor && !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        if kinds.is_empty() {
            kinds.push(CredentialKind::Key);
        }
        let has_totp = creds
            .iter()
            .any(|c| c.is_active && c.kind == CredentialKind::Totp);
        ChallengeResponse {
            challenge,
            challenge_identifier: id,
            rp: Some(keyfold_types::auth::RelyingParty {
                id: self.settings.rp_id.clone(),
                name: self.settings.rp_name.clone(),
            }),
            supported_credential_kinds: kinds
                .into_iter()
                .map(|kind| SupportedCredentialKind {
                    kind,
                    factor: CredentialFactor::First,
                    requires_second_factor: has_totp,
                })
                .chain(has_totp.then_some(SupportedCredentialKind {
                    kind: CredentialKind::Totp,
                    factor: CredentialFactor::Second,
                    requires_second_factor: false,
                }))
                .collect(),
            user_verification: UserVerification::Required,
            attestation: Attestation::None,
            allow_credentials: AllowCredentials {
                key,
                webauthn,
                password_protected_key: (reveal_encrypted_keys && !protected.is_empty())
                    .then_some(protected),
            },
            external_authentication_url: String::new(),
        }
    }
}

/// The token whose own key must sign for this caller: a PAT's, or none (the user's keys).
fn pat_of(principal: &Principal) -> Option<&str> {
    (principal.token_kind == TokenKind::Pat).then_some(principal.token_id.as_str())
}

/// The credentials that may answer a challenge for a caller acting through `pat` (or as the
/// user itself when `None`): a PAT's key never logs in, and a PAT signs only with its key.
fn usable_by(creds: Vec<Credential>, pat: Option<&str>) -> Vec<Credential> {
    creds
        .into_iter()
        .filter(|c| c.token_id.as_deref() == pat)
        .collect()
}

/// See [`AuthService::send_login_code`].
const LOGIN_CODE_RESEND_SECS: i64 = 30;

fn bad_login_code() -> DomainError {
    DomainError::unauthenticated("the login code is not valid")
}

/// What an action challenge's identifier starts with (the rest: base64url of the sealed
/// [`SealedActionChallenge`]).
const ACTION_CHALLENGE_PREFIX: &str = "kfac_";
const ACTION_CHALLENGE_AAD: &[u8] = b"keyfold: sealed action challenge v1";

/// What a user action token starts with (the rest: base64url of the sealed
/// [`SealedUserAction`]).
const USER_ACTION_PREFIX: &str = "kfua_";
const USER_ACTION_AAD: &[u8] = b"keyfold: sealed user action v1";
/// The longest base64 body of a sealed challenge or token accepted.
const MAX_SEALED_B64: usize = 16 * 1024;

/// A user action as it travels, sealed, in its token until a request spends it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedUserAction {
    id: String,
    org: String,
    user: String,
    token: String,
    credential: String,
    method: String,
    path: String,
    payload: String,
    challenge: String,
    client_data: String,
    signature: String,
    expires: i64,
    created: i64,
}

/// An action challenge as it travels, sealed, in its identifier.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedActionChallenge {
    id: String,
    org: String,
    user: String,
    token: String,
    method: String,
    path: String,
    payload: String,
    challenge: String,
    expires: i64,
    created: i64,
}
