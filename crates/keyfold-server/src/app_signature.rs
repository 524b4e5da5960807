//! Requests made under an application (`X-DFNS-APPID`): the application is checked — and a
//! server-side application's signature over the exact method, path, query and body bytes,
//! with a never-seen nonce — before any handler runs. The verified [`AppContext`] rides in
//! the request's extensions; the `Auth` extractor then refuses a token bound to a server-side
//! application on a request that application did not sign (see `keyfold_auth::apps`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyfold_auth::apps::AppRequest;
use keyfold_domain::DomainError;

use crate::error::ApiError;
use crate::state::AppState;

pub const APP_ID: &str = "x-dfns-appid";
pub const NONCE: &str = "x-dfns-nonce";
pub const SIGNATURE: &str = "x-dfns-apisignature";

pub async fn check(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key(APP_ID) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let header = |name: &str| -> Result<Option<String>, ApiError> {
        parts
            .headers
            .get(name)
            .map(|v| {
                v.to_str().map(str::to_string).map_err(|_| {
                    ApiError::from(DomainError::unauthenticated(format!(
                        "{name} must be ASCII"
                    )))
                })
            })
            .transpose()
    };
    let (app_id, nonce, signature) = match (header(APP_ID), header(NONCE), header(SIGNATURE)) {
        (Ok(a), Ok(n), Ok(sig)) => (a.unwrap_or_default(), n, sig),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, s.config.server.max_body_bytes).await {
        Ok(b) => b,
        // The same 413 as every other route (the body limit layer does not reach here).
        Err(_) => return ApiError::PayloadTooLarge(s.config.server.max_body_bytes).into_response(),
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let verified = s
        .auth
        .verify_app_request(&AppRequest {
            app_id: &app_id,
            nonce: nonce.as_deref(),
            signature: signature.as_deref(),
            method: parts.method.as_str(),
            path_and_query: &path_and_query,
            body: &bytes,
        })
        .await;
    match verified {
        Ok(ctx) => {
            parts.extensions.insert(ctx);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
