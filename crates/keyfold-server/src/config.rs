//! Configuration: built-in defaults, then a TOML file, then `KEYFOLD_*` environment variables
//! (`__` separates levels: `KEYFOLD_DATABASE__URL` sets `database.url`), then command-line
//! flags — loaded once, validated into [`Config`], and passed down. Secrets can come from
//! files (`*_file`), are never printed (`Debug` shows `<redacted>`), and unknown keys are an
//! error, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret string from configuration: never shown by `Debug`, zeroized on drop.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub email: EmailConfig,
    /// `[networks.<Name>]`: RPC endpoints per network (used from issue [3 of 6] on).
    pub networks: BTreeMap<String, NetworkConfig>,
    /// `[signing]`: the signer cluster this API coordinates.
    pub signing: SigningConfig,
    /// `[transfers]`: the background tracker of broadcast transactions.
    pub transfers: TransfersConfig,
}

/// How the API follows the transactions it broadcast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransfersConfig {
    /// Pause between passes of the tracker (receipts, re-broadcasts, abandoned requests).
    pub tracker_interval_ms: u64,
    /// Requests looked at per pass.
    pub tracker_batch: i64,
    /// A broadcast transaction the network lost and refuses when sent again is declared
    /// failed only this long after its broadcast (a lagging node can refuse for a while).
    pub dropped_after_secs: u64,
}

impl Default for TransfersConfig {
    fn default() -> Self {
        Self {
            tracker_interval_ms: 2_000,
            tracker_batch: 200,
            dropped_after_secs: 120,
        }
    }
}

/// The signer cluster, as the API sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The cluster file (JSON: threshold and, per signer, its id, URL and pinned public keys).
    /// Without one the API serves everything but keys and wallets.
    pub cluster_file: Option<PathBuf>,
    /// The bearer token the signers require (or `token_file`).
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    /// Presignatures kept ready per ECDSA key (0 disables the pool).
    pub presignatures_per_key: i64,
    /// FROST nonce pairs kept ready per Ed25519 / Schnorr key that has signed (0 disables the
    /// pool; every signature then runs the two-round protocol).
    pub nonces_per_key: i64,
    /// Keys per scheme generated ahead of time (by the same distributed key generation), so
    /// creating a key or a wallet does not wait for it (0 disables).
    pub pooled_keys_per_scheme: i64,
    /// Longest a protocol run may take before the signer is dropped and another quorum tried.
    pub session_timeout_secs: u64,
    /// How long an ECDSA key creation waits for the cluster's ECDSA setup before 503.
    pub ready_wait_secs: u64,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            cluster_file: None,
            token: None,
            token_file: None,
            presignatures_per_key: 8,
            nonces_per_key: 64,
            pooled_keys_per_scheme: 8,
            session_timeout_secs: 60,
            ready_wait_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL clients use to reach this server (emails, admin.json). Defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest request body accepted (bigger ones get 413).
    pub max_body_bytes: usize,
    /// Name of the organization `keyfold dev` bootstraps.
    pub org_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/keyfold.db` or `postgres://user@host:5432/db`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub token_ttl_secs: i64,
    pub challenge_ttl_secs: i64,
    pub user_action_ttl_secs: i64,
    pub registration_code_ttl_secs: i64,
    /// 64 hex characters sealing the server's own secrets (JWT signing keys) at rest.
    pub secret_key: Option<SecretString>,
    /// …or a file holding them.
    pub secret_key_file: Option<PathBuf>,
    /// WebAuthn relying party id; defaults to the public URL's host.
    pub rp_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// `From:` of outgoing mail.
    pub from: String,
    /// Deliver through this SMTP relay.
    pub smtp: Option<SmtpConfig>,
    /// Also write every message as an `.eml` file here (`keyfold dev` sets `DIR/outbox`).
    pub outbox_dir: Option<PathBuf>,
    /// Log each message's text (development only: it contains one-time codes).
    pub log_messages: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Use STARTTLS (recommended anywhere but loopback).
    #[serde(default)]
    pub starttls: bool,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    25
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub rpc_url: String,
    pub chain_id: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            org_name: "Keyfold".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://keyfold-data/keyfold.db".into(),
            max_connections: 16,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_ttl_secs: 24 * 3600,
            challenge_ttl_secs: 300,
            user_action_ttl_secs: 300,
            registration_code_ttl_secs: 7 * 24 * 3600,
            secret_key: None,
            secret_key_file: None,
            rp_id: None,
        }
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            from: "Keyfold <no-reply@keyfold.localhost>".into(),
            smtp: None,
            outbox_dir: None,
            log_messages: false,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Layers `base` (the caller's defaults), the TOML file, `KEYFOLD_*` variables. Flags are
    /// applied by the caller afterwards, then [`Config::validate`].
    pub fn load(base: &Config, file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(base));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("{} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only sectioned variables (KEYFOLD_SECTION__KEY) are configuration; others such as
        // KEYFOLD_CONFIG or test settings are not.
        fig = fig.merge(Env::prefixed("KEYFOLD_").filter_map(|k| {
            let k = k.as_str();
            k.contains("__").then(|| k.replace("__", ".").into())
        }));
        fig.extract().map_err(|e| ConfigError(e.to_string()))
    }

    /// Checks everything that can be checked before start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.public_url();
        let parsed = url::Url::parse(&url)
            .map_err(|e| ConfigError(format!("server.public_url {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ConfigError(
                "server.public_url must be an http(s) URL".into(),
            ));
        }
        if keyfold_store::BackendKind::of_url(&self.database.url).is_none() {
            return Err(ConfigError(
                "database.url must start with sqlite:// or postgres://".into(),
            ));
        }
        if !(0..=10_000).contains(&self.signing.presignatures_per_key) {
            return Err(ConfigError(
                "signing.presignatures_per_key must be 0..=10000".into(),
            ));
        }
        if !(0..=1_000).contains(&self.signing.pooled_keys_per_scheme) {
            return Err(ConfigError(
                "signing.pooled_keys_per_scheme must be 0..=1000".into(),
            ));
        }
        if !(0..=10_000).contains(&self.signing.nonces_per_key) {
            return Err(ConfigError(
                "signing.nonces_per_key must be 0..=10000".into(),
            ));
        }
        if !(1..=3600).contains(&self.signing.session_timeout_secs)
            || self.signing.ready_wait_secs > 3600
        {
            return Err(ConfigError(
                "signing.session_timeout_secs must be 1..=3600 and signing.ready_wait_secs ≤ 3600"
                    .into(),
            ));
        }
        if !(1..=10_000).contains(&self.database.max_connections) {
            return Err(ConfigError(
                "database.max_connections must be 1..=10000".into(),
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return Err(ConfigError(
                "server.max_body_bytes must be 1 KiB..=64 MiB".into(),
            ));
        }
        for (name, v, max) in [
            (
                "auth.token_ttl_secs",
                self.auth.token_ttl_secs,
                30 * 24 * 3600,
            ),
            (
                "auth.challenge_ttl_secs",
                self.auth.challenge_ttl_secs,
                3600,
            ),
            (
                "auth.user_action_ttl_secs",
                self.auth.user_action_ttl_secs,
                3600,
            ),
            (
                "auth.registration_code_ttl_secs",
                self.auth.registration_code_ttl_secs,
                30 * 24 * 3600,
            ),
        ] {
            if !(10..=max).contains(&v) {
                return Err(ConfigError(format!("{name} must be 10..={max}")));
            }
        }
        if self.auth.secret_key.is_some() && self.auth.secret_key_file.is_some() {
            return Err(ConfigError(
                "set auth.secret_key or auth.secret_key_file, not both".into(),
            ));
        }
        for (name, n) in &self.networks {
            url::Url::parse(&n.rpc_url)
                .map_err(|e| ConfigError(format!("networks.{name}.rpc_url: {e}")))?;
        }
        Ok(())
    }

    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }

    pub fn rp_id(&self) -> String {
        self.auth.rp_id.clone().unwrap_or_else(|| {
            url::Url::parse(&self.public_url())
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "localhost".into())
        })
    }

    /// The authentication flows' settings.
    pub fn auth_settings(&self) -> keyfold_auth::AuthSettings {
        keyfold_auth::AuthSettings {
            token_ttl_secs: self.auth.token_ttl_secs,
            challenge_ttl_secs: self.auth.challenge_ttl_secs,
            user_action_ttl_secs: self.auth.user_action_ttl_secs,
            max_payload_bytes: self.server.max_body_bytes,
            rp_id: self.rp_id(),
            rp_name: self.server.org_name.clone(),
        }
    }

    /// The server secret key (hex), from the config value or its file.
    pub fn secret_key_hex(&self) -> Result<Zeroizing<String>, ConfigError> {
        if let Some(k) = &self.auth.secret_key {
            return Ok(Zeroizing::new(k.expose().trim().to_string()));
        }
        if let Some(path) = &self.auth.secret_key_file {
            let s = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("auth.secret_key_file {}: {e}", path.display()))
            })?;
            return Ok(Zeroizing::new(s.trim().to_string()));
        }
        Err(ConfigError(
            "auth.secret_key or auth.secret_key_file is required (64 hex characters; \
             generate one with `openssl rand -hex 32`)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn layers_file_then_env_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[database]\nurl = \"postgres://x@h/db\"\n\
             [networks.EthereumSepolia]\nrpc_url = \"http://127.0.0.1:8545\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("KEYFOLD_DATABASE__MAX_CONNECTIONS", "3");
            jail.set_env("KEYFOLD_CONFIG", "ignored");
            let c = Config::load(&Config::default(), Some(&path)).unwrap();
            assert_eq!(c.server.listen.port(), 9000);
            assert_eq!(c.database.url, "postgres://x@h/db");
            assert_eq!(c.database.max_connections, 3);
            assert_eq!(
                c.networks["EthereumSepolia"].rpc_url,
                "http://127.0.0.1:8545"
            );
            jail.set_env("KEYFOLD_SERVER__LISTN", "x");
            assert!(Config::load(&Config::default(), Some(&path)).is_err());
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.auth.secret_key = Some(SecretString::new("00".repeat(32)));
        assert!(!format!("{c:?}").contains("0000"));
        assert!(format!("{c:?}").contains("<redacted>"));
    }
}

#[cfg(test)]
mod example_file {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_example_config_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keyfold.example.toml");
        // Inside a Jail: environment-variable tests run concurrently in this process.
        figment::Jail::expect_with(|_| {
            let c = Config::load(&Config::default(), Some(&path)).unwrap();
            c.validate().unwrap();
            assert_eq!(c, Config::default(), "the example documents the defaults");
            Ok(())
        });
    }
}
