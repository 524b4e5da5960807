//! The HTTP face of a signer node (`keyfold signer`): what the coordinator calls.
//!
//! Every request must carry the cluster token (`Authorization: Bearer …`), compared in
//! constant time. The token only keeps strangers from starting sessions; it does not make the
//! coordinator trusted: protocol messages stay sealed between nodes, and the node checks the
//! group membership against its own configuration.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use keyfold_signer::SignerNode;
use keyfold_signer::protocol::{NodeError, PartialSignRequest, StartSession, StepRequest};
use subtle::ConstantTimeEq;

#[derive(Clone)]
struct NodeState {
    node: Arc<SignerNode>,
    token: Arc<zeroize::Zeroizing<String>>,
}

struct NodeFailure(NodeError);

impl IntoResponse for NodeFailure {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            NodeError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            NodeError::UnknownSession => StatusCode::NOT_FOUND,
            NodeError::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Tampered { .. } => StatusCode::CONFLICT,
            NodeError::Misbehaving { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            NodeError::Failure { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if matches!(self.0, NodeError::Tampered { .. }) {
            tracing::error!(error = %self.0, "stored secret failed its integrity check");
        }
        (status, Json(self.0)).into_response()
    }
}

type NodeResult<T> = Result<Json<T>, NodeFailure>;

/// The signer node's router.
pub fn router(node: Arc<SignerNode>, token: zeroize::Zeroizing<String>) -> Router {
    let state = NodeState {
        node,
        token: Arc::new(token),
    };
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/health", get(health))
        .route("/v1/sessions", post(start))
        .route("/v1/sessions/{id}/messages", post(step))
        .route("/v1/sessions/{id}", delete(abort))
        .route("/v1/partial-signatures", post(partial))
        .route("/v1/nonces", post(nonces))
        .route("/v1/frost-shares", post(frost_share))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Aux-info rounds carry a few hundred kilobytes.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(state)
}

async fn require_token(
    State(s): State<NodeState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(s.token.as_bytes())) && !s.token.is_empty() {
        next.run(req).await
    } else {
        let body = serde_json::json!({"error": {"message": "missing or wrong cluster token"}});
        (StatusCode::UNAUTHORIZED, Json(body)).into_response()
    }
}

async fn info(State(s): State<NodeState>) -> NodeResult<keyfold_signer::protocol::NodeInfo> {
    Ok(Json(s.node.info()))
}

async fn health(State(s): State<NodeState>) -> NodeResult<keyfold_signer::protocol::NodeHealth> {
    s.node.health().await.map(Json).map_err(NodeFailure)
}

async fn start(
    State(s): State<NodeState>,
    Json(req): Json<StartSession>,
) -> NodeResult<keyfold_signer::protocol::StepResponse> {
    s.node.start(req).await.map(Json).map_err(NodeFailure)
}

async fn step(
    State(s): State<NodeState>,
    Path(id): Path<String>,
    Json(req): Json<StepRequest>,
) -> NodeResult<keyfold_signer::protocol::StepResponse> {
    s.node.step(&id, req).await.map(Json).map_err(NodeFailure)
}

async fn abort(State(s): State<NodeState>, Path(id): Path<String>) -> Json<serde_json::Value> {
    s.node.abort(&id);
    Json(serde_json::json!({}))
}

async fn partial(
    State(s): State<NodeState>,
    Json(req): Json<PartialSignRequest>,
) -> NodeResult<keyfold_signer::protocol::PartialSignResponse> {
    s.node
        .partial_sign(req)
        .await
        .map(Json)
        .map_err(NodeFailure)
}

async fn nonces(
    State(s): State<NodeState>,
    Json(req): Json<keyfold_signer::protocol::NoncesRequest>,
) -> NodeResult<keyfold_signer::protocol::NoncesResponse> {
    s.node.make_nonces(req).await.map(Json).map_err(NodeFailure)
}

async fn frost_share(
    State(s): State<NodeState>,
    Json(req): Json<keyfold_signer::protocol::FrostShareRequest>,
) -> NodeResult<keyfold_signer::protocol::FrostShareResponse> {
    s.node.frost_share(req).await.map(Json).map_err(NodeFailure)
}

/// Serves a signer node's router until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
