//! The local signer cluster of `keyfold dev`: `keyfold signer` processes (three by default,
//! threshold 2)
//! on loopback, each with its own SQLite database and KEK under `DIR/signer-N/`.
//!
//! Start-up is two-phase: each node first creates (or reopens) its identity and prints its
//! public keys, then `DIR/cluster.json` pins those keys and the nodes are started with it.
//! Ports are chosen afresh on every start (the file is rewritten; the keys never change).
//! Each child watches our pid and exits if we die, so no orphan keeps a port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keyfold_domain::ports::SignerCluster;
use keyfold_server::cluster::Cluster;
use keyfold_server::cluster::file::{ClusterFile, ClusterMember};
use keyfold_signer::protocol::NodeInfo;
use rand::RngCore;
use tokio::process::{Child, Command};

const THRESHOLD: u16 = 2;

/// The running signer processes.
#[derive(Debug)]
pub struct DevSigners {
    pub cluster_file: PathBuf,
    pub token_file: PathBuf,
    children: Vec<Child>,
}

impl DevSigners {
    pub async fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.start_kill();
        }
        for c in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(3), c.wait()).await;
        }
    }
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the keyfold binary")
}

async fn identity(dir: &Path, id: &str) -> anyhow::Result<NodeInfo> {
    let out = Command::new(exe()?)
        .args([
            "signer",
            "--id",
            id,
            "--create-kek",
            "--print-identity",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "signer {id} could not open its identity: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| format!("signer {id} identity output"))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts the signers and waits until each answers.
pub async fn start(data_dir: &Path, count: usize) -> anyhow::Result<DevSigners> {
    if !(2..=16).contains(&count) {
        bail!("--signers must be 0 or 2..=16");
    }
    let token_file = data_dir.join("cluster.token");
    if !token_file.exists() {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        crate::dev::write_private_file(&token_file, hex::encode(b).as_bytes())?;
    }
    let ids: Vec<String> = (1..=count).map(|i| format!("signer-{i}")).collect();
    let dirs: Vec<PathBuf> = ids.iter().map(|id| data_dir.join(id)).collect();
    let infos = futures_join(ids.iter().zip(&dirs).map(|(id, d)| identity(d, id))).await?;
    let mut members = Vec::new();
    for (info, id) in infos.into_iter().zip(&ids) {
        members.push(ClusterMember {
            signer_id: id.clone(),
            url: format!("http://127.0.0.1:{}", free_port()?),
            public: info.public,
        });
    }
    let file = ClusterFile {
        threshold: THRESHOLD,
        members,
    };
    let cluster_file = data_dir.join("cluster.json");
    crate::dev::write_private_file(
        &cluster_file,
        serde_json::to_string_pretty(&file)?.as_bytes(),
    )?;
    let mut children = Vec::new();
    for (m, dir) in file.members.iter().zip(&dirs) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("signer.log"))?;
        let listen = m.url.trim_start_matches("http://");
        let child = Command::new(exe()?)
            .args([
                "signer",
                "--id",
                &m.signer_id,
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(dir)
            .arg("--cluster")
            .arg(&cluster_file)
            .arg("--token-file")
            .arg(&token_file)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", m.signer_id))?;
        children.push(child);
    }
    let signers = DevSigners {
        cluster_file,
        token_file,
        children,
    };
    let token = std::fs::read_to_string(&signers.token_file)?;
    let http = reqwest_client()?;
    for (m, dir) in file.members.iter().zip(&dirs) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = http
                .get(format!("{}/v1/info", m.url))
                .bearer_auth(token.trim())
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                break;
            }
            if Instant::now() > deadline {
                signers.stop().await;
                bail!(
                    "{} did not start; see {}",
                    m.signer_id,
                    dir.join("signer.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    tracing::info!(
        signers = count,
        threshold = THRESHOLD,
        "local signer cluster is up"
    );
    Ok(signers)
}

fn reqwest_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?)
}

async fn futures_join<T>(
    futs: impl Iterator<Item = impl std::future::Future<Output = anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    futures::future::join_all(futs).await.into_iter().collect()
}

/// Shows what ECDSA set-up is doing (safe primes, then aux info) until it is ready. EdDSA
/// and Schnorr keys work meanwhile.
pub async fn show_ecdsa_progress(cluster: Arc<Cluster>, started: Instant) {
    let first = cluster.readiness();
    if first.ecdsa.ready {
        return;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {spinner} ECDSA setup [{elapsed}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last = String::new();
    loop {
        let r = cluster.readiness();
        if r.ecdsa.ready {
            bar.finish_and_clear();
            tracing::info!(
                secs = started.elapsed().as_secs(),
                "ECDSA is ready (safe primes and aux info are cached for the next start)"
            );
            return;
        }
        if r.ecdsa.detail != last {
            bar.set_message(format!(
                "{} — EdDSA and Schnorr keys already work",
                r.ecdsa.detail
            ));
            if bar.is_hidden() {
                tracing::info!(status = %r.ecdsa.detail, "ECDSA setup");
            }
            last = r.ecdsa.detail;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
