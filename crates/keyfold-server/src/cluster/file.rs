//! The cluster file: which signers the API coordinates, where they listen, and their pinned
//! public keys. The same file configures each signer (`keyfold signer --cluster FILE`), so
//! every node and the coordinator agree on the membership and its order (party indexes).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keyfold_domain::ports::Store;
use keyfold_domain::time::Clock;
use keyfold_keystore::NodePublic;
use keyfold_signer::group_id_of;
use keyfold_signer::protocol::{Group, Member};
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterSettings, HttpNode, NodeClient};
use crate::config::{Config, ConfigError};

/// One signer in the cluster file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterMember {
    pub signer_id: String,
    /// Where the coordinator reaches it (`http://host:port`).
    pub url: String,
    pub public: NodePublic,
}

/// `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterFile {
    /// Signers needed for a signature.
    pub threshold: u16,
    /// In party order.
    pub members: Vec<ClusterMember>,
}

impl ClusterFile {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cluster file {}: {e}", path.display())))?;
        let file: ClusterFile = serde_json::from_str(&text)
            .map_err(|e| ConfigError(format!("cluster file {}: {e}", path.display())))?;
        file.validate()?;
        Ok(file)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.members.len();
        if !(2..=64).contains(&n) {
            return Err(ConfigError("a cluster has 2 to 64 signers".into()));
        }
        if self.threshold < 2 || usize::from(self.threshold) > n {
            return Err(ConfigError(format!(
                "threshold must be 2..={n} for {n} signers"
            )));
        }
        let mut ids: Vec<&str> = self.members.iter().map(|m| m.signer_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != n {
            return Err(ConfigError(
                "signer ids in the cluster file must be unique".into(),
            ));
        }
        for m in &self.members {
            if m.signer_id.is_empty()
                || m.signer_id.len() > 64
                || !m
                    .signer_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError(format!(
                    "signer id {:?}: 1-64 of [A-Za-z0-9_-]",
                    m.signer_id
                )));
            }
        }
        Ok(())
    }

    /// The members in party order, as the protocol sees them.
    pub fn members(&self) -> Vec<Member> {
        self.members
            .iter()
            .map(|m| Member {
                signer_id: m.signer_id.clone(),
                public: m.public,
            })
            .collect()
    }

    pub fn group(&self) -> Group {
        let ids: Vec<String> = self.members.iter().map(|m| m.signer_id.clone()).collect();
        Group {
            group_id: group_id_of(&ids),
            threshold: self.threshold,
            members: self.members(),
        }
    }
}

impl Config {
    /// The token the signers require, from `signing.token` or `signing.token_file`.
    pub fn signer_token(&self) -> Result<zeroize::Zeroizing<String>, ConfigError> {
        if let Some(t) = &self.signing.token {
            return Ok(zeroize::Zeroizing::new(t.expose().trim().to_string()));
        }
        if let Some(p) = &self.signing.token_file {
            let s = std::fs::read_to_string(p)
                .map_err(|e| ConfigError(format!("signing.token_file {}: {e}", p.display())))?;
            return Ok(zeroize::Zeroizing::new(s.trim().to_string()));
        }
        Err(ConfigError(
            "signing.token or signing.token_file is required with a cluster file".into(),
        ))
    }

    /// The coordinator settings.
    pub fn cluster_settings(&self) -> ClusterSettings {
        ClusterSettings {
            session_timeout: Duration::from_secs(self.signing.session_timeout_secs),
            presignatures_per_key: self.signing.presignatures_per_key,
            nonces_per_key: self.signing.nonces_per_key,
            pooled_keys: self.signing.pooled_keys_per_scheme,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Chain id overrides from `[networks.<Name>] chain_id`.
    pub fn chain_ids(&self) -> Vec<(String, u64)> {
        self.networks
            .iter()
            .filter_map(|(name, n)| n.chain_id.map(|id| (name.clone(), id)))
            .collect()
    }
}

/// Builds the coordinator over HTTP from the configuration, or `None` without a cluster file.
pub fn cluster_from_config(
    cfg: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Option<Arc<Cluster>>, ConfigError> {
    let Some(path) = &cfg.signing.cluster_file else {
        return Ok(None);
    };
    let file = ClusterFile::read(path)?;
    let token = cfg.signer_token()?;
    // Per HTTP call: long enough for one aux-info round on a busy machine. Signing runs are
    // bounded by the (shorter) session timeout around the whole run.
    let timeout =
        Duration::from_secs(cfg.signing.session_timeout_secs).max(Duration::from_secs(600));
    let mut nodes: Vec<Arc<dyn NodeClient>> = Vec::new();
    for m in &file.members {
        let node = HttpNode::new(&m.signer_id, &m.url, &token, timeout)
            .map_err(|e| ConfigError(format!("signer {}: {e}", m.signer_id)))?;
        nodes.push(Arc::new(node));
    }
    Ok(Some(Arc::new(Cluster::new(
        file.group(),
        nodes,
        store,
        clock,
        cfg.cluster_settings(),
    ))))
}
