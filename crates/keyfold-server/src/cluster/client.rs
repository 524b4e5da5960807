//! How the coordinator reaches a signer node: over HTTP (production, `keyfold dev`), or by a
//! direct call (in-process tests, where a node can be "killed" at will).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keyfold_signer::SignerNode;
use keyfold_signer::protocol::{
    FrostShareRequest, FrostShareResponse, NodeError, NodeHealth, NodeInfo, NoncesRequest,
    NoncesResponse, PartialSignRequest, PartialSignResponse, StartSession, StepRequest,
    StepResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One signer node, as the coordinator sees it.
#[async_trait]
pub trait NodeClient: Send + Sync + std::fmt::Debug {
    fn signer_id(&self) -> &str;
    async fn info(&self) -> Result<NodeInfo, NodeError>;
    async fn health(&self) -> Result<NodeHealth, NodeError>;
    async fn start(&self, req: &StartSession) -> Result<StepResponse, NodeError>;
    async fn step(&self, session_id: &str, req: &StepRequest) -> Result<StepResponse, NodeError>;
    async fn abort(&self, session_id: &str);
    async fn partial_sign(
        &self,
        req: &PartialSignRequest,
    ) -> Result<PartialSignResponse, NodeError>;
    async fn make_nonces(&self, req: &NoncesRequest) -> Result<NoncesResponse, NodeError>;
    async fn frost_share(&self, req: &FrostShareRequest) -> Result<FrostShareResponse, NodeError>;
}

/// A node reached over HTTP. Requests carry the cluster token.
#[derive(Debug, Clone)]
pub struct HttpNode {
    signer_id: String,
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl HttpNode {
    pub fn new(
        signer_id: &str,
        base_url: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Self, NodeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| NodeError::failure(format!("http client: {e}")))?;
        Ok(Self {
            signer_id: signer_id.into(),
            base_url: base_url.trim_end_matches('/').into(),
            token: token.into(),
            http,
        })
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, NodeError> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base_url, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| NodeError::Failure {
            message: format!("signer {} unreachable: {e}", self.signer_id),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| NodeError::Failure {
            message: format!("signer {} answer: {e}", self.signer_id),
        })?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| NodeError::Failure {
                message: format!("signer {} sent an unreadable answer: {e}", self.signer_id),
            })
        } else {
            Err(
                serde_json::from_slice::<NodeError>(&bytes).unwrap_or_else(|_| {
                    NodeError::Failure {
                        message: format!("signer {} answered HTTP {status}", self.signer_id),
                    }
                }),
            )
        }
    }
}

#[async_trait]
impl NodeClient for HttpNode {
    fn signer_id(&self) -> &str {
        &self.signer_id
    }
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.call::<(), _>(reqwest::Method::GET, "/v1/info", None)
            .await
    }
    async fn health(&self) -> Result<NodeHealth, NodeError> {
        self.call::<(), _>(reqwest::Method::GET, "/v1/health", None)
            .await
    }
    async fn start(&self, req: &StartSession) -> Result<StepResponse, NodeError> {
        self.call(reqwest::Method::POST, "/v1/sessions", Some(req))
            .await
    }
    async fn step(&self, session_id: &str, req: &StepRequest) -> Result<StepResponse, NodeError> {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{session_id}/messages"),
            Some(req),
        )
        .await
    }
    async fn abort(&self, session_id: &str) {
        let _ = self
            .call::<(), serde_json::Value>(
                reqwest::Method::DELETE,
                &format!("/v1/sessions/{session_id}"),
                None,
            )
            .await;
    }
    async fn partial_sign(
        &self,
        req: &PartialSignRequest,
    ) -> Result<PartialSignResponse, NodeError> {
        self.call(reqwest::Method::POST, "/v1/partial-signatures", Some(req))
            .await
    }
    async fn make_nonces(&self, req: &NoncesRequest) -> Result<NoncesResponse, NodeError> {
        self.call(reqwest::Method::POST, "/v1/nonces", Some(req))
            .await
    }
    async fn frost_share(&self, req: &FrostShareRequest) -> Result<FrostShareResponse, NodeError> {
        self.call(reqwest::Method::POST, "/v1/frost-shares", Some(req))
            .await
    }
}

/// A node in this process, reached by direct calls. `set_down(true)` makes it behave like a
/// dead process (every call fails), and `replace` like a restarted one, for tests.
#[derive(Debug)]
pub struct LocalNode {
    signer_id: String,
    node: std::sync::RwLock<Arc<SignerNode>>,
    down: AtomicBool,
    /// Steps left before the node "dies" mid-session (negative: never).
    die_after: std::sync::atomic::AtomicI64,
}

impl LocalNode {
    pub fn new(node: Arc<SignerNode>) -> Self {
        Self {
            signer_id: node.signer_id().to_string(),
            node: std::sync::RwLock::new(node),
            down: AtomicBool::new(false),
            die_after: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    /// The node behind this client now.
    pub fn node(&self) -> Arc<SignerNode> {
        match self.node.read() {
            Ok(n) => n.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `node` (the same signer, reopened: a restarted process) behind this client.
    pub fn replace(&self, node: Arc<SignerNode>) {
        match self.node.write() {
            Ok(mut n) => *n = node,
            Err(poisoned) => *poisoned.into_inner() = node,
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes the node go down in the middle of its `steps + 1`-th protocol step: it computes,
    /// then never answers (as a process killed mid-request).
    pub fn die_after_steps(&self, steps: i64) {
        self.die_after.store(steps, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), NodeError> {
        if self.down.load(Ordering::SeqCst) {
            Err(NodeError::Failure {
                message: format!("signer {} unreachable", self.signer_id),
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl NodeClient for LocalNode {
    fn signer_id(&self) -> &str {
        &self.signer_id
    }
    async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.check()?;
        Ok(self.node().info())
    }
    async fn health(&self) -> Result<NodeHealth, NodeError> {
        self.check()?;
        self.node().health().await
    }
    async fn start(&self, req: &StartSession) -> Result<StepResponse, NodeError> {
        self.check()?;
        self.node().start(req.clone()).await
    }
    async fn step(&self, session_id: &str, req: &StepRequest) -> Result<StepResponse, NodeError> {
        self.check()?;
        let r = self.node().step(session_id, req.clone()).await;
        if self.die_after.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.set_down(true);
        }
        // A node that died mid-call never answers.
        self.check()?;
        r
    }
    async fn abort(&self, session_id: &str) {
        self.node().abort(session_id);
    }
    async fn partial_sign(
        &self,
        req: &PartialSignRequest,
    ) -> Result<PartialSignResponse, NodeError> {
        self.check()?;
        self.node().partial_sign(req.clone()).await
    }
    async fn make_nonces(&self, req: &NoncesRequest) -> Result<NoncesResponse, NodeError> {
        self.check()?;
        self.node().make_nonces(req.clone()).await
    }
    async fn frost_share(&self, req: &FrostShareRequest) -> Result<FrostShareResponse, NodeError> {
        self.check()?;
        let r = self.node().frost_share(req.clone()).await;
        if self.die_after.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.set_down(true);
        }
        // A node that died mid-call never answers.
        self.check()?;
        r
    }
}
