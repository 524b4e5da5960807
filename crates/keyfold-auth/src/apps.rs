//! Applications: who may run WebAuthn ceremonies for the organization, and which back ends
//! must sign their requests.
//!
//! - A **client-side** application names an exact origin and a relying party id. A passkey
//!   ceremony is verified against the application whose origin the browser reported
//!   (`crate::webauthn`), so a page on any other origin — a phishing copy included — cannot
//!   use the organization's passkeys.
//! - A **server-side** application holds a public key. A request naming it
//!   (`X-DFNS-APPID`) must carry a fresh nonce and the app's signature over the request:
//!
//!   ```text
//!   X-DFNS-NONCE:        base64url(JSON {"uuid": "<≥16 random chars>", "date": "<ISO 8601>"})
//!   X-DFNS-APISIGNATURE: base64url(sign(app key, "<appId>\n<nonce>\n<METHOD>\n<path?query>\n<hex sha256(body)>"))
//!   ```
//!
//!   signed as Node's `crypto.sign(undefined, …)` does for the key type (ECDSA P-256 /
//!   secp256k1 with SHA-256, Ed25519, RSA PKCS#1 v1.5 SHA-256). The date must be within
//!   five minutes of the server's clock, and each nonce is accepted once. A token obtained
//!   by logging in under a server-side application is bound to it: without the app's
//!   signature that token is refused, so a token that leaks from the back end is useless
//!   anywhere else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfold_domain::DomainError;
use keyfold_domain::authz::{Granted, op};
use keyfold_domain::ids::{IdKind, looks_like, new_id};
use keyfold_domain::model::{App, AppKind};
use keyfold_domain::time::Timestamp;
use keyfold_domain::validate;
use keyfold_types::auth::{AppKindName, AppResponse, CreateAppBody};
use keyfold_types::limits;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::credential::{PublicKey, b64url};
use crate::service::{AuthService, Result};

/// How far a signed request's date may be from the server's clock.
pub const NONCE_WINDOW_SECS: i64 = 300;

/// A verified application context of a request.
#[derive(Debug, Clone)]
pub struct AppContext {
    pub app_id: String,
    pub org_id: String,
    pub kind: AppKind,
}

/// The request an application signature covers.
#[derive(Debug)]
pub struct AppRequest<'a> {
    pub app_id: &'a str,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

fn not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("application {id} not found"))
}

fn unknown_app() -> DomainError {
    DomainError::unauthenticated("X-DFNS-APPID names no active application")
}

pub fn app_response(a: &App) -> AppResponse {
    AppResponse {
        app_id: a.id.clone(),
        kind: match a.kind {
            AppKind::ServerSide => AppKindName::ServerSideApplication,
            AppKind::ClientSide | AppKind::Default => AppKindName::ClientSideApplication,
        },
        org_id: a.org_id.clone(),
        expected_rp_id: a.expected_rp_id.clone(),
        name: a.name.clone(),
        is_active: a.is_active,
        expected_origin: a.expected_origin.clone(),
        public_key: a.public_key.clone(),
        permission_assignments: Vec::new(),
        access_tokens: Vec::new(),
    }
}

/// The canonical text a server-side application signs (its own id first: a signature for
/// one application never verifies for another, even one sharing its key).
pub fn signed_text(
    app_id: &str,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    format!(
        "{app_id}\n{nonce}\n{}\n{path_and_query}\n{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
}

/// `expectedOrigin`: scheme, host and port only; https unless the host is localhost.
fn checked_origin(raw: &str) -> Result<(String, String)> {
    let bad = || {
        DomainError::invalid(
            "expectedOrigin must be an origin such as https://wallet.example.com (https, or http on localhost; no path)",
        )
    };
    let u = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    let host = u.host_str().ok_or_else(bad)?.to_ascii_lowercase();
    let local = host == "localhost" || host.ends_with(".localhost");
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && local);
    if !scheme_ok
        || !matches!(u.path(), "" | "/")
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(bad());
    }
    let origin = u.origin().ascii_serialization();
    Ok((origin, host))
}

impl AuthService {
    pub async fn list_apps(&self, g: &Granted<op::AppsRead>) -> Result<Vec<AppResponse>> {
        Ok(self
            .store
            .list_apps(g.org_id())
            .await?
            .iter()
            .map(app_response)
            .collect())
    }

    pub async fn get_app(&self, g: &Granted<op::AppsRead>, id: &str) -> Result<AppResponse> {
        if !looks_like(IdKind::App, id) {
            return Err(not_found(id));
        }
        let app = self
            .store
            .get_app(id)
            .await?
            .filter(|a| a.org_id == g.org_id())
            .ok_or_else(|| not_found(id))?;
        Ok(app_response(&app))
    }

    /// `POST /auth/apps`.
    pub async fn create_app(
        &self,
        g: &Granted<op::AppsCreate>,
        body: CreateAppBody,
    ) -> Result<AppResponse> {
        let name = validate::required_text("name", &body.name, limits::NAME_MAX)?;
        let now = self.clock.now();
        let app = match body.kind {
            AppKindName::ClientSideApplication => {
                if body.public_key.is_some() {
                    return Err(DomainError::invalid(
                        "publicKey is for server-side applications",
                    ));
                }
                let origin = body.expected_origin.as_deref().ok_or_else(|| {
                    DomainError::invalid("a client-side application needs expectedOrigin")
                })?;
                let (origin, host) = checked_origin(origin)?;
                let rp = body
                    .expected_rp_id
                    .as_deref()
                    .map(|r| r.trim().to_ascii_lowercase())
                    .unwrap_or_else(|| host.clone());
                // WebAuthn: the RP id is the origin's host or a registrable suffix of it; an
                // IP address has no suffixes, and a bare top-level label is no registrable
                // domain (localhost aside).
                let is_ip = host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok();
                let suffix_ok = !is_ip
                    && host.ends_with(&format!(".{rp}"))
                    && (rp.contains('.') || rp == "localhost");
                if !(host == rp || suffix_ok) || rp.is_empty() {
                    return Err(DomainError::invalid(format!(
                        "expectedRpId must be {host} or a parent domain of it"
                    )));
                }
                App {
                    id: new_id(IdKind::App),
                    org_id: g.org_id().to_string(),
                    name,
                    kind: AppKind::ClientSide,
                    expected_origin: Some(origin),
                    expected_rp_id: Some(rp),
                    public_key: None,
                    is_active: true,
                    created_at: now,
                }
            }
            AppKindName::ServerSideApplication => {
                if body.expected_origin.is_some() || body.expected_rp_id.is_some() {
                    return Err(DomainError::invalid(
                        "expectedOrigin and expectedRpId are for client-side applications",
                    ));
                }
                let pem = body
                    .public_key
                    .as_deref()
                    .map(str::trim)
                    .ok_or_else(|| {
                        DomainError::invalid("a server-side application needs publicKey")
                    })?
                    .to_string();
                PublicKey::from_pem(&pem)
                    .map_err(|e| DomainError::invalid(format!("publicKey: {e}")))?;
                App {
                    id: new_id(IdKind::App),
                    org_id: g.org_id().to_string(),
                    name,
                    kind: AppKind::ServerSide,
                    expected_origin: None,
                    expected_rp_id: None,
                    public_key: Some(pem),
                    is_active: true,
                    created_at: now,
                }
            }
        };
        self.store.insert_app(&app).await?;
        Ok(app_response(&app))
    }

    /// Checks a request made under an application (`X-DFNS-APPID`): the application exists
    /// and is active; a server-side one's signature over this very request verifies with a
    /// fresh, never-seen nonce.
    pub async fn verify_app_request(&self, r: &AppRequest<'_>) -> Result<AppContext> {
        if !looks_like(IdKind::App, r.app_id) {
            return Err(unknown_app());
        }
        let app = self
            .store
            .get_app(r.app_id)
            .await?
            .filter(|a| a.is_active)
            .ok_or_else(unknown_app)?;
        if app.kind == AppKind::ServerSide {
            let key = app
                .public_key
                .as_deref()
                .ok_or_else(|| DomainError::internal("server-side application without a key"))
                .and_then(PublicKey::from_pem)?;
            let nonce = r.nonce.ok_or_else(|| {
                DomainError::unauthenticated(
                    "requests under a server-side application need X-DFNS-NONCE and X-DFNS-APISIGNATURE",
                )
            })?;
            let signature = r.signature.ok_or_else(|| {
                DomainError::unauthenticated(
                    "requests under a server-side application need X-DFNS-APISIGNATURE",
                )
            })?;
            let expires = self.check_nonce(nonce)?;
            let sig = b64url("X-DFNS-APISIGNATURE", signature).map_err(|_| {
                DomainError::unauthenticated("X-DFNS-APISIGNATURE is not base64url")
            })?;
            key.verify(
                signed_text(&app.id, nonce, r.method, r.path_and_query, r.body).as_bytes(),
                &sig,
                None,
            )
            .map_err(|_| {
                DomainError::unauthenticated(
                    "the application signature does not match this request",
                )
            })?;
            if !self
                .store
                .use_app_nonce(&app.id, nonce, expires, self.clock.now())
                .await?
            {
                return Err(DomainError::unauthenticated(
                    "this X-DFNS-NONCE was already used: a replayed request is refused",
                ));
            }
        }
        Ok(AppContext {
            app_id: app.id,
            org_id: app.org_id,
            kind: app.kind,
        })
    }

    /// A nonce's date within the window; returns until when it must be remembered.
    fn check_nonce(&self, nonce: &str) -> Result<Timestamp> {
        #[derive(Deserialize)]
        struct Nonce {
            uuid: String,
            date: String,
        }
        let bad = |why: &str| DomainError::unauthenticated(format!("X-DFNS-NONCE {why}"));
        if nonce.len() > 512 {
            return Err(bad("is too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(nonce.trim_end_matches('='))
            .map_err(|_| bad("is not base64url"))?;
        let n: Nonce = serde_json::from_slice(&raw)
            .map_err(|_| bad("must be base64url of JSON {uuid, date}"))?;
        if n.uuid.trim().len() < 16 {
            return Err(bad("needs a uuid of at least 16 characters"));
        }
        let date = Timestamp::parse_iso(&n.date).ok_or_else(|| bad("has no ISO 8601 date"))?;
        let now = self.clock.now();
        if (date.millis() - now.millis()).abs() > NONCE_WINDOW_SECS * 1000 {
            return Err(bad("is stale: its date is more than five minutes from now"));
        }
        Ok(date.plus_secs(NONCE_WINDOW_SECS))
    }
}
