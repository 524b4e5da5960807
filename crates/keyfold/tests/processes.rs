//! The `keyfold` binary as processes: `keyfold dev` with its three signer processes (first
//! start, a second server on the same data refused, restart on the same data), and `keyfold
//! signer` refusing a cluster file that pins other keys than its own. (Building this test
//! also builds the binary the Node, Python and schemathesis suites run, with the same
//! features as the rest of `cargo test`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keyfold");

fn fixture_primes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../keyfold-mpc/tests/fixtures/primes.json")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Dev {
    child: Child,
    url: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dev(dir: &Path, port: u16) -> Dev {
    let log = std::fs::File::create(dir.with_extension(format!("{port}.log"))).unwrap();
    let child = Command::new(BIN)
        .args(["dev", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("KEYFOLD_INSECURE_TEST_PRIMES", fixture_primes())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Dev {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_healthy(url: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await
            && r.status().is_success()
        {
            return r.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "keyfold dev did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signer_pids(dir: &Path) -> Vec<u32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" signer ") && cmd.contains(&*dir.to_string_lossy()) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_starts_three_signers_and_restarts_on_the_same_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let port = free_port();
    let dev = start_dev(&dir, port);
    let health = wait_healthy(&dev.url).await;
    for scheme in ["EdDSA", "Schnorr"] {
        assert_eq!(health["schemes"][scheme]["ready"], true, "{health}");
    }
    // The data dir: admin file, cluster file pinning three signers, one folder each.
    let cluster: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    assert_eq!(cluster["threshold"], 2);
    assert_eq!(cluster["members"].as_array().unwrap().len(), 3);
    for i in 1..=3 {
        let d = dir.join(format!("signer-{i}"));
        assert!(d.join("signer.db").exists() && d.join("kek.hex").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("kek.hex"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the KEK file is private");
        }
    }
    assert_eq!(signer_pids(&dir).len(), 3);

    // GET /signers lists them, with the encryption keys the cluster file pins.
    let admin = keyfold_sdk::Client::from_admin_file(dir.join("admin.json"))
        .await
        .unwrap();
    let signers: serde_json::Value = admin.get("/signers").await.unwrap();
    let listed = &signers["clusters"][0]["signers"];
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["signerId"], "signer-1");
    let org = admin.org_id().unwrap().to_string();

    // A second server on the same SQLite file refuses to start (the first caches what only
    // it can change), before it touches the signers or the cluster file.
    let second = Command::new(BIN)
        .args(["dev", "--data-dir"])
        .arg(&dir)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(why.contains("in use by another Keyfold process"), "{why}");
    assert_eq!(signer_pids(&dir).len(), 3);
    wait_healthy(&dev.url).await;
    drop(dev);

    // The signers follow their parent down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !signer_pids(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "signer processes outlived keyfold dev"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Restart: same organization, same signer identities, same cluster keys.
    let dev = start_dev(&dir, port);
    wait_healthy(&dev.url).await;
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    for i in 0..3 {
        assert_eq!(
            again["members"][i]["public"],
            cluster["members"][i]["public"]
        );
    }
    let admin = keyfold_sdk::Client::from_admin_file(dir.join("admin.json"))
        .await
        .unwrap();
    assert_eq!(admin.org_id().unwrap(), org);
}

#[test]
fn a_signer_refuses_a_cluster_file_pinning_other_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = |dir: &Path, id: &str| -> serde_json::Value {
        let out = Command::new(BIN)
            .args([
                "signer",
                "--id",
                id,
                "--create-kek",
                "--print-identity",
                "--data-dir",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = identity(&tmp.path().join("a"), "signer-a");
    let b = identity(&tmp.path().join("b"), "signer-b");
    // Same identity on a second run.
    assert_eq!(identity(&tmp.path().join("a"), "signer-a"), a);
    // A cluster file that gives signer-a the keys of signer-b.
    let cluster = serde_json::json!({
        "threshold": 2,
        "members": [
            {"signerId": "signer-a", "url": "http://127.0.0.1:1", "public": b["public"]},
            {"signerId": "signer-b", "url": "http://127.0.0.1:2", "public": b["public"]},
        ]
    });
    let file = tmp.path().join("cluster.json");
    std::fs::write(&file, cluster.to_string()).unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "x".repeat(64)).unwrap();
    let out = Command::new(BIN)
        .args(["signer", "--id", "signer-a", "--data-dir"])
        .arg(tmp.path().join("a"))
        .arg("--cluster")
        .arg(&file)
        .arg("--token-file")
        .arg(&token)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("other public keys"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a KEK (and without --create-kek) a new node does not start.
    let out = Command::new(BIN)
        .args([
            "signer",
            "--id",
            "signer-c",
            "--print-identity",
            "--data-dir",
        ])
        .arg(tmp.path().join("c"))
        .env_remove("KEYFOLD_SIGNER_KEK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no KEK"));
}
