//! Extractors: how a request becomes typed, authenticated, authorized input.
//!
//! * [`JsonBody`] — a JSON body, with our error shape for malformed input and 413 for
//!   oversized bodies (axum's own `Json` answers in plain text).
//! * [`Auth`] — the bearer token verified into a [`Principal`] (once per request; later
//!   extractors reuse it).
//! * [`Perm<O>`] — the principal *holding operation `O`*: a [`Granted<O>`] capability, which
//!   is what the domain's use cases demand. Checked before the body is even read.
//! * [`Signed<T>`] — the `x-dfns-useraction` token checked against this request's method,
//!   path and exact body bytes, the body parsed, and only then the token spent (single use),
//!   before the handler runs.

use std::time::Duration;

use axum::body::BodyDataStream;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use keyfold_domain::DomainError;
use keyfold_domain::authz::{Granted, Operation, Principal};
use keyfold_domain::model::UserAction;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the single-use user action token.
pub const USER_ACTION_HEADER: &str = "x-dfns-useraction";

/// How much of an oversized body is still read (and thrown away) before the 413 goes out.
///
/// A server that answers and closes while the client is still sending leaves unread bytes in
/// its socket; the kernel then resets the connection, and the client usually loses the 413
/// it was sent (EPIPE/ECONNRESET instead of an answer). Draining a bounded amount first — a
/// "lingering close" — lets ordinary clients that overshoot the limit read a proper error.
/// Bodies beyond this bound, or slower than [`DRAIN_DEADLINE`], are cut off.
const DRAIN_MAX_BYTES: usize = 32 * 1024 * 1024;
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Reads the whole body, at most `server.max_body_bytes` of it; a larger body is drained
/// (within bounds, without buffering) and refused with 413.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let max = state.config.server.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A client that waits for `100 Continue` has sent nothing yet: reading would invite the
    // upload, so it gets the 413 straight away instead.
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut stream = req.into_body().into_data_stream();
    if declared.is_some_and(|n| n > max as u64) {
        if !expects_continue {
            drain(stream, 0).await;
        }
        return Err(ApiError::PayloadTooLarge(max));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > max {
            drain(stream, buf.len() + chunk.len()).await;
            return Err(ApiError::PayloadTooLarge(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads and discards the rest of a body, up to [`DRAIN_MAX_BYTES`] in all and
/// [`DRAIN_DEADLINE`].
async fn drain(mut stream: BodyDataStream, already: usize) {
    let mut seen = already;
    let _ = tokio::time::timeout(DRAIN_DEADLINE, async {
        while seen <= DRAIN_MAX_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON request body is required"));
    }
    // Every Dfns request body is an object. serde would otherwise fill a struct from a JSON
    // array by position (`["us-1"]` as `{"delegateTo": "us-1"}`), accepting what no client
    // means to send.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A JSON request body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be absent (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// The bearer token from `Authorization`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            DomainError::unauthenticated("the Authorization: Bearer header is required")
        })?
        .to_str()
        .map_err(|_| DomainError::unauthenticated("the Authorization header is malformed"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            DomainError::unauthenticated("the Authorization header must be `Bearer <token>`")
        })?;
    Ok(token)
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Auth(p.clone()));
        }
        let principal = state.auth.authenticate(bearer(&parts.headers)?).await?;
        let app = parts.extensions.get::<keyfold_auth::apps::AppContext>();
        if let Some(app) = app
            && app.org_id != principal.org_id
        {
            return Err(DomainError::unauthenticated(
                "the application belongs to another organization",
            )
            .into());
        }
        if let Some(bound) = &principal.bound_app
            && app.is_none_or(|a| &a.app_id != bound)
        {
            return Err(DomainError::unauthenticated(format!(
                "this token was issued through server-side application {bound}: its requests must carry that application's signature"
            ))
            .into());
        }
        parts.extensions.insert(principal.clone());
        Ok(Auth(principal))
    }
}

/// The authenticated caller, holding operation `O`.
#[derive(Debug)]
pub struct Perm<O: Operation>(pub Granted<O>);

impl<O: Operation> FromRequestParts<AppState> for Perm<O> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        Ok(Perm(principal.authorize::<O>()?))
    }
}

/// A request body approved by a user action: verified, parsed, and the action spent.
#[derive(Debug)]
pub struct Signed<T> {
    pub body: T,
    pub action: UserAction,
    /// The exact body the action signed (signers receive it as evidence).
    pub raw: String,
}

impl<T> Signed<T> {
    /// What signers are told about the user action behind a signing request.
    pub fn evidence(&self) -> keyfold_domain::ports::ActionEvidence {
        evidence(&self.action, &self.raw)
    }
}

/// A request body approved by a user action that is verified but **not spent**: for the
/// handlers whose domain call spends the action in the transaction of its first write
/// (signature requests; see `keyfold_domain::keys::ApprovingAction`). Every path of such a
/// call that reaches the domain spends it; one that never gets there (the service not
/// configured, the client gone) did nothing, and its action stays spendable until it expires.
#[derive(Debug)]
pub struct Approved<T> {
    pub body: T,
    pub approving: keyfold_domain::keys::ApprovingAction,
}

fn evidence(action: &UserAction, raw: &str) -> keyfold_domain::ports::ActionEvidence {
    keyfold_domain::ports::ActionEvidence {
        user_action_id: action.id.clone(),
        user_id: action.user_id.clone(),
        credential_uuid: action.credential_uuid.clone(),
        challenge: action.challenge.clone(),
        client_data: action.client_data.clone(),
        signature: action.signature.clone(),
        http_method: action.http_method.clone(),
        http_path: action.http_path.clone(),
        body: raw.to_string(),
    }
}

/// The body of a signed request that carries none (activate, deactivate, delete): accepts
/// an empty body or any JSON object.
#[derive(Debug)]
pub struct Empty;

impl<'de> serde::Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Empty)
    }
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Signed<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (body, action, raw) = checked_action(req, state).await?;
        state.auth.consume_action(&action).await?;
        Ok(Signed { body, action, raw })
    }
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Approved<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (body, action, raw) = checked_action(req, state).await?;
        let evidence = evidence(&action, &raw);
        Ok(Approved {
            body,
            approving: keyfold_domain::keys::ApprovingAction { action, evidence },
        })
    }
}

/// The parsed body, the user action that approves this exact request (checked, not spent)
/// and the raw body it signed.
async fn checked_action<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
) -> Result<(T, UserAction, String), ApiError> {
    let (mut parts, body) = req.into_parts();
    let Auth(principal) = Auth::from_request_parts(&mut parts, state).await?;
    let token = parts
            .headers
            .get(USER_ACTION_HEADER)
            .ok_or_else(|| {
                DomainError::unauthenticated(
                    "this request changes state and needs a signed user action (x-dfns-useraction header)",
                )
            })?
            .to_str()
            .map_err(|_| DomainError::unauthenticated("the x-dfns-useraction header is malformed"))?
            .to_string();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let bytes = read_body(Request::from_parts(parts, body), state).await?;
    let action = state
        .auth
        .check_action(&principal, &token, &method, &path, &bytes)
        .await?;
    // An empty body reads as JSON null: fine for `Empty` and optional bodies, "required"
    // for the rest.
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice(b"null")
            .map_err(|_| ApiError::bad_request("a JSON request body is required"))?
    } else {
        parse_json(&bytes)?
    };
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    Ok((body, action, raw))
}

/// A path parameter (the id segment), with our error shape.
#[derive(Debug)]
pub struct PathId(pub String);

impl FromRequestParts<AppState> for PathId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path parameter: {e}")))?;
        Ok(PathId(id))
    }
}

/// A query string, with our error shape.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(q) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))?;
        Ok(QueryParams(q))
    }
}

/// Several path parameters, with our error shape.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PathParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(v) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("bad path parameters: {e}")))?;
        Ok(PathParams(v))
    }
}
