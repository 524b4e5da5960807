//! A Rust client for Keyfold — and for any server speaking the Dfns API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyfold_sdk::Error> {
//! let client = keyfold_sdk::Client::from_admin_file("keyfold-data/admin.json").await?;
//! let users = client.list_users(&Default::default()).await?;
//! println!("{} users", users.items.len());
//! # Ok(()) }
//! ```
//!
//! Every state-changing call runs the user action flow for you: it asks the server for a
//! challenge bound to the exact method, path and body, signs it with your key credential
//! ([`KeySigner`]), trades it for a single-use token and sends the request with it — the
//! same dance as `@dfns/sdk`'s `userActionFetch`. [`Client::user_action`] exposes the token
//! step on its own for callers (and tests) that build requests themselves.

mod signer;

use std::path::Path;

use keyfold_types::ListResponse;
use keyfold_types::auth::{
    ChallengeResponse, CreateLoginChallengeBody, CreateRegistrationChallengeBody,
    CreateUserActionChallengeBody, CreateUserActionSignatureBody, HttpMethod, LoginBody,
    LoginResponse, LogoutBody, MessageResponse, NewCredential, RegisterBody, RegisterResponse,
    RegistrationChallengeResponse, UserActionResponse,
};
use keyfold_types::users::{CreateUserBody, ListUsersQuery, UpdateUserBody, UserResponse};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use signer::KeySigner;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Api { status: u16, message: String },
    #[error("transport: {0}")]
    Transport(String),
    #[error("credential: {0}")]
    Signer(String),
    #[error("decoding the response: {0}")]
    Decode(String),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The file `keyfold dev` writes: everything needed to act as the root user.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminFile {
    pub base_url: String,
    pub org_id: String,
    pub user_id: String,
    pub username: String,
    pub cred_id: String,
    pub private_key: String,
}

/// An API client, optionally logged in and holding a credential for user actions.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    org_id: Option<String>,
    token: Option<String>,
    signer: Option<KeySigner>,
}

impl Client {
    /// An anonymous client.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            org_id: None,
            token: None,
            signer: None,
        }
    }

    /// With an existing access token (and optionally a credential for user actions).
    pub fn with_token(mut self, token: impl Into<String>, signer: Option<KeySigner>) -> Self {
        self.token = Some(token.into());
        self.signer = signer;
        self
    }

    pub fn org_id(&self) -> Option<&str> {
        self.org_id.as_deref()
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Logs in with a key credential.
    pub async fn login(
        base_url: impl Into<String>,
        org_id: &str,
        username: &str,
        signer: KeySigner,
    ) -> Result<Self> {
        let anon = Self::new(base_url);
        let challenge: ChallengeResponse = anon
            .send(
                Method::POST,
                "/auth/login/init",
                Some(&CreateLoginChallengeBody {
                    username: Some(username.into()),
                    org_id: org_id.into(),
                    login_code: None,
                }),
                None,
            )
            .await?;
        let assertion = signer.assert(&challenge)?;
        let login: LoginResponse = anon
            .send(
                Method::POST,
                "/auth/login",
                Some(&LoginBody {
                    challenge_identifier: challenge.challenge_identifier,
                    first_factor: assertion,
                    second_factor: None,
                }),
                None,
            )
            .await?;
        Ok(Self {
            org_id: Some(org_id.into()),
            token: Some(login.token),
            signer: Some(signer),
            ..anon
        })
    }

    /// Reads an `admin.json` written by `keyfold dev` and logs in as its user.
    pub async fn from_admin_file(path: impl AsRef<Path>) -> Result<Self> {
        let raw = std::fs::read_to_string(path.as_ref())
            .map_err(|e| Error::Usage(format!("{}: {e}", path.as_ref().display())))?;
        let admin: AdminFile =
            serde_json::from_str(&raw).map_err(|e| Error::Usage(format!("admin file: {e}")))?;
        let signer = KeySigner::from_pkcs8_pem(&admin.cred_id, &admin.private_key)?;
        Self::login(&admin.base_url, &admin.org_id, &admin.username, signer).await
    }

    /// Sends one request. `body` is serialized exactly once; `user_action` goes in
    /// `x-dfns-useraction`.
    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        user_action: Option<&str>,
    ) -> Result<T> {
        let payload = match body {
            Some(b) => Some(serde_json::to_string(b).map_err(|e| Error::Usage(e.to_string()))?),
            None => None,
        };
        self.send_raw(method, path, payload, user_action).await
    }

    /// Sends a request with a pre-serialized body (what a user action signs).
    pub async fn send_raw<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        payload: Option<String>,
        user_action: Option<&str>,
    ) -> Result<T> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base_url, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(ua) = user_action {
            req = req.header("x-dfns-useraction", ua);
        }
        if let Some(p) = payload {
            req = req.header("content-type", "application/json").body(p);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<keyfold_types::ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or(text);
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| Error::Decode(format!("{e}: {text}")))
    }

    /// Signs a user action for `method path` with exactly `payload` as the body, returning
    /// the single-use token.
    pub async fn user_action(
        &self,
        method: HttpMethod,
        path: &str,
        payload: &str,
    ) -> Result<String> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            Error::Usage("a credential (signer) is needed for user actions".into())
        })?;
        let challenge: ChallengeResponse = self
            .send(
                Method::POST,
                "/auth/action/init",
                Some(&CreateUserActionChallengeBody {
                    user_action_server_kind: None,
                    user_action_http_method: method,
                    user_action_http_path: path.into(),
                    user_action_payload: payload.into(),
                }),
                None,
            )
            .await?;
        let assertion = signer.assert(&challenge)?;
        let ua: UserActionResponse = self
            .send(
                Method::POST,
                "/auth/action",
                Some(&CreateUserActionSignatureBody {
                    challenge_identifier: challenge.challenge_identifier,
                    first_factor: assertion,
                    second_factor: None,
                }),
                None,
            )
            .await?;
        Ok(ua.user_action)
    }

    /// A state-changing call: user action, then the request.
    pub async fn signed<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: HttpMethod,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let payload = match body {
            Some(b) => Some(serde_json::to_string(b).map_err(|e| Error::Usage(e.to_string()))?),
            None => None,
        };
        let token = self
            .user_action(method, path, payload.as_deref().unwrap_or(""))
            .await?;
        let m = Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| Error::Usage(e.to_string()))?;
        self.send_raw(m, path, payload, Some(&token)).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send::<(), T>(Method::GET, path, None, None).await
    }

    // ------------------------------------------------------------------ auth

    pub async fn logout(&self, all_sessions: bool) -> Result<MessageResponse> {
        self.send(
            Method::PUT,
            "/auth/logout",
            Some(&LogoutBody {
                all_sessions: Some(all_sessions),
            }),
            None,
        )
        .await
    }

    /// `POST /auth/registration/init` (anonymous).
    pub async fn registration_init(
        &self,
        org_id: &str,
        username: &str,
        code: &str,
    ) -> Result<RegistrationChallengeResponse> {
        self.send(
            Method::POST,
            "/auth/registration/init",
            Some(&CreateRegistrationChallengeBody {
                org_id: org_id.into(),
                username: username.into(),
                registration_code: code.into(),
            }),
            None,
        )
        .await
    }

    /// Registers `signer` as the first credential of the invited user.
    pub async fn register(
        &self,
        challenge: &RegistrationChallengeResponse,
        signer: &KeySigner,
    ) -> Result<RegisterResponse> {
        let body = RegisterBody {
            first_factor_credential: NewCredential::Key {
                credential_info: signer.attest(&challenge.challenge, &self.base_url)?,
                credential_name: Some("sdk key".into()),
            },
            second_factor_credential: None,
            recovery_credential: None,
        };
        Self::new(self.base_url.clone())
            .with_token(challenge.temporary_authentication_token.clone(), None)
            .send(Method::POST, "/auth/registration", Some(&body), None)
            .await
    }

    // ------------------------------------------------------------------ users

    pub async fn create_user(&self, body: &CreateUserBody) -> Result<UserResponse> {
        self.signed(HttpMethod::Post, "/auth/users", Some(body))
            .await
    }

    pub async fn list_users(&self, q: &ListUsersQuery) -> Result<ListResponse<UserResponse>> {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(l) = q.limit {
            qs.append_pair("limit", &l.to_string());
        }
        if let Some(t) = &q.pagination_token {
            qs.append_pair("paginationToken", t);
        }
        if let Some(k) = q.kind {
            let k = serde_json::to_value(k).map_err(|e| Error::Usage(e.to_string()))?;
            qs.append_pair("kind", k.as_str().unwrap_or_default());
        }
        let qs = qs.finish();
        let path = if qs.is_empty() {
            "/auth/users".to_string()
        } else {
            format!("/auth/users?{qs}")
        };
        self.get(&path).await
    }

    pub async fn get_user(&self, user_id: &str) -> Result<UserResponse> {
        self.get(&format!("/auth/users/{user_id}")).await
    }

    pub async fn update_user(&self, user_id: &str, body: &UpdateUserBody) -> Result<UserResponse> {
        self.signed(
            HttpMethod::Put,
            &format!("/auth/users/{user_id}"),
            Some(body),
        )
        .await
    }

    pub async fn activate_user(&self, user_id: &str) -> Result<UserResponse> {
        self.signed::<(), _>(
            HttpMethod::Put,
            &format!("/auth/users/{user_id}/activate"),
            None,
        )
        .await
    }

    pub async fn deactivate_user(&self, user_id: &str) -> Result<UserResponse> {
        self.signed::<(), _>(
            HttpMethod::Put,
            &format!("/auth/users/{user_id}/deactivate"),
            None,
        )
        .await
    }

    pub async fn delete_user(&self, user_id: &str) -> Result<UserResponse> {
        self.signed::<(), _>(HttpMethod::Delete, &format!("/auth/users/{user_id}"), None)
            .await
    }
}
