//! The test harness: a real server on a loopback port over a throwaway database (SQLite or
//! PostgreSQL), an organization bootstrapped with a root key credential, and a clock the
//! test can move.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use keyfold_auth::bootstrap::{NewOrganization, new_organization};
use keyfold_auth::sealer::Sealer;
use keyfold_domain::ports::Store;
use keyfold_domain::time::{Clock, ManualClock, SystemClock};
use keyfold_keystore::Kek;
use keyfold_sdk::{Client, KeySigner};
use keyfold_server::cluster::{Cluster, ClusterSettings, LocalNode, NodeClient};
use keyfold_server::{Config, Server, Signing};
use keyfold_signer::protocol::{Group, Member};
use keyfold_signer::{NodeConfig, SignerNode, group_id_of};
use keyfold_store::testing::{TestDb, TestNodeDb};

pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Harness {
    pub url: String,
    pub org_id: String,
    pub root_id: String,
    pub root_username: String,
    pub root_signer: KeySigner,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub server: Server,
    pub outbox: tempfile::TempDir,
    /// The in-process signer nodes (empty unless started with signing).
    pub signers: Vec<Arc<LocalNode>>,
    pub signer_dbs: Vec<TestNodeDb>,
    /// Each signer's key-encryption key (hex), to reopen it as a restarted process would.
    pub signer_keks: Vec<String>,
    pub cluster: Option<Arc<Cluster>>,
    _db: TestDb,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(backend, tweak, None).await
    }

    /// A server with three in-process signer nodes (threshold 2) on their own databases,
    /// seeded with the public fixture primes, ECDSA aux info already generated.
    pub async fn start_signing(backend: Backend, presignatures_per_key: i64) -> Self {
        Self::start_full(backend, |_| {}, Some(presignatures_per_key)).await
    }

    /// [`Harness::start_signing`] with a configuration tweak (networks, tracker pace).
    pub async fn start_signing_with(
        backend: Backend,
        presignatures_per_key: i64,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_full(backend, tweak, Some(presignatures_per_key)).await
    }

    async fn start_full(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
        presignatures: Option<i64>,
    ) -> Self {
        let postgres = matches!(backend, Backend::Postgres);
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        };
        let store: Arc<dyn Store> = Arc::new(db.store.clone());
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::default();
        config.server.listen = addr;
        config.database.url = db.url.clone();
        config.server.max_body_bytes = 64 * 1024;
        let outbox = tempfile::tempdir().unwrap();
        config.email.outbox_dir = Some(outbox.path().to_path_buf());
        tweak(&mut config);
        let root_signer = KeySigner::generate_p256();
        let b = new_organization(
            &NewOrganization {
                org_name: "Test org".into(),
                root_username: "root@example.com".into(),
                root_cred_id: root_signer.cred_id().into(),
                root_public_key_pem: root_signer.public_key_pem().unwrap(),
                app_origin: format!("http://{addr}"),
                app_rp_id: "127.0.0.1".into(),
            },
            clock.now(),
        )
        .unwrap();
        store.bootstrap(&b).await.unwrap();
        let sealer = Sealer::from_hex(&Sealer::generate_hex()).unwrap();
        let (signers, signer_dbs, signer_keks, signing) = match presignatures {
            None => (vec![], vec![], vec![], None),
            Some(pool) => {
                let (nodes, dbs, keks, cluster) =
                    local_cluster(postgres, store.clone(), pool).await;
                config.signing.presignatures_per_key = pool;
                config.signing.session_timeout_secs = 20;
                let signing = Signing::new(&config, cluster).unwrap();
                (nodes, dbs, keks, Some(signing))
            }
        };
        let cluster = signing.as_ref().map(|s| s.cluster.clone());
        let server = Server::build_with(
            config,
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            sealer,
            signing,
        )
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        tokio::spawn(async move {
            s.serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            org_id: b.org.id,
            root_id: b.root.id,
            root_username: b.root.username,
            root_signer,
            store,
            clock,
            server,
            outbox,
            signers,
            signer_dbs,
            signer_keks,
            cluster,
            _db: db,
            _shutdown: tx,
        }
    }

    /// The root user, logged in.
    pub async fn root(&self) -> Client {
        Client::login(
            &self.url,
            &self.org_id,
            &self.root_username,
            self.root_signer.clone(),
        )
        .await
        .unwrap()
    }

    /// A raw HTTP client for hand-built requests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// The registration code last emailed to `email`, read from the `.eml` files the mail
    /// worker writes (polls: delivery is asynchronous).
    pub async fn registration_code_for(&self, email: &str) -> String {
        for _ in 0..200 {
            let mut best: Option<(std::time::SystemTime, String)> = None;
            for entry in std::fs::read_dir(self.outbox.path()).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().to_string();
                if !name.ends_with(".eml") || name.starts_with('.') {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path()).unwrap();
                if !text
                    .lines()
                    .any(|l| l.starts_with("To:") && l.contains(email))
                {
                    continue;
                }
                let code = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Your registration code is: "))
                    .map(|c| c.trim().to_string());
                let mtime = entry.metadata().unwrap().modified().unwrap();
                if let Some(code) = code
                    && best.as_ref().is_none_or(|(t, _)| mtime >= *t)
                {
                    best = Some((mtime, code));
                }
            }
            if let Some((_, code)) = best {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no registration email for {email}");
    }

    /// Invites `email`, registers a fresh key credential for it and logs it in.
    pub async fn registered_user(&self, root: &Client, email: &str) -> (String, Client) {
        let user = root
            .create_user(&keyfold_types::users::CreateUserBody {
                email: email.into(),
                kind: keyfold_types::users::CreatableUserKind::CustomerEmployee,
                public_key: None,
                external_id: None,
                is_sso_required: None,
            })
            .await
            .unwrap();
        let code = self.registration_code_for(email).await;
        let anon = Client::new(&self.url);
        let challenge = anon
            .registration_init(&self.org_id, email, &code)
            .await
            .unwrap();
        let signer = KeySigner::generate_ed25519();
        anon.register(&challenge, &signer).await.unwrap();
        let client = Client::login(&self.url, &self.org_id, email, signer)
            .await
            .unwrap();
        (user.user_id, client)
    }
}

/// Public, test-only safe primes (see crates/keyfold-mpc/tests/fixtures).
const FIXTURE_PRIMES: &str = include_str!("../../../keyfold-mpc/tests/fixtures/primes.json");

fn fixture_primes(party: usize) -> keyfold_mpc::ecdsa::PaillierPrimes {
    let v: serde_json::Value = serde_json::from_str(FIXTURE_PRIMES).unwrap();
    let hexes: Vec<Vec<u8>> = v["parties"][party]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect();
    keyfold_mpc::ecdsa::PaillierPrimes::from_be_bytes([&hexes[0], &hexes[1], &hexes[2], &hexes[3]])
        .unwrap()
}

/// Opens a signer node over `store` (a "restart" when the store already holds its identity).
pub async fn open_node(
    signer_id: &str,
    kek: &Kek,
    store: Arc<dyn keyfold_domain::ports::NodeStore>,
    members: Vec<Member>,
) -> SignerNode {
    SignerNode::open(
        NodeConfig {
            signer_id: signer_id.into(),
            members,
            prime_sets: 1,
            session_ttl: std::time::Duration::from_secs(60),
        },
        Kek::from_hex(&kek.to_hex()).unwrap(),
        store,
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// Three signer-node databases (SQLite) holding their identities and the ECDSA aux info of
/// their group, built once per test process and copied by every SQLite harness: aux-info
/// generation costs tens of seconds of CPU, and each test needs fresh databases, not fresh
/// aux info. Tests only — these databases hold the public fixture primes' aux info.
struct AuxTemplate {
    dir: tempfile::TempDir,
    keks: Vec<String>,
}

static AUX_TEMPLATE: tokio::sync::OnceCell<AuxTemplate> = tokio::sync::OnceCell::const_new();

async fn aux_template() -> &'static AuxTemplate {
    AUX_TEMPLATE
        .get_or_init(|| async {
            let api = TestDb::sqlite().await;
            let (nodes, dbs, keks, cluster) =
                fresh_cluster(false, Arc::new(api.store.clone()), 0).await;
            let dir = tempfile::tempdir().unwrap();
            for (i, db) in dbs.iter().enumerate() {
                db.snapshot_to(&dir.path().join(format!("signer-{i}.db")))
                    .await;
            }
            drop((nodes, cluster));
            AuxTemplate { dir, keks }
        })
        .await
}

async fn local_cluster(
    postgres: bool,
    store: Arc<dyn Store>,
    presignatures: i64,
) -> (
    Vec<Arc<LocalNode>>,
    Vec<TestNodeDb>,
    Vec<String>,
    Arc<Cluster>,
) {
    if postgres {
        return fresh_cluster(true, store, presignatures).await;
    }
    let t = aux_template().await;
    let mut dbs = Vec::new();
    let mut nodes = Vec::new();
    for (i, kek) in t.keks.iter().enumerate() {
        let db = TestNodeDb::sqlite_copy_of(&t.dir.path().join(format!("signer-{i}.db"))).await;
        let node = open_node(
            &format!("signer-{i}"),
            &Kek::from_hex(kek).unwrap(),
            Arc::new(db.store.clone()),
            vec![],
        )
        .await;
        nodes.push(Arc::new(node));
        dbs.push(db);
    }
    let (nodes, cluster) = assemble(nodes, store, presignatures).await;
    (nodes, dbs, t.keks.clone(), cluster)
}

/// Three nodes on new databases (the first on PostgreSQL if `postgres`), seeded with the
/// fixture primes; the group's ECDSA aux info generated.
async fn fresh_cluster(
    postgres: bool,
    store: Arc<dyn Store>,
    presignatures: i64,
) -> (
    Vec<Arc<LocalNode>>,
    Vec<TestNodeDb>,
    Vec<String>,
    Arc<Cluster>,
) {
    let mut dbs = Vec::new();
    let mut nodes = Vec::new();
    let mut keks = Vec::new();
    for i in 0..3 {
        // The first node on the server's backend, the others on SQLite: nodes are independent.
        let db = if postgres && i == 0 {
            TestNodeDb::postgres().await
        } else {
            TestNodeDb::sqlite().await
        };
        let kek = Kek::generate();
        let node = open_node(
            &format!("signer-{i}"),
            &kek,
            Arc::new(db.store.clone()),
            vec![],
        )
        .await;
        node.add_primes(&fixture_primes(i)).await.unwrap();
        nodes.push(Arc::new(node));
        dbs.push(db);
        keks.push(kek.to_hex().to_string());
    }
    let (nodes, cluster) = assemble(nodes, store, presignatures).await;
    (nodes, dbs, keks, cluster)
}

/// Pins the nodes to each other, wraps them for the coordinator and waits for ECDSA aux
/// info (immediate when the nodes already hold it).
async fn assemble(
    nodes: Vec<Arc<SignerNode>>,
    store: Arc<dyn Store>,
    presignatures: i64,
) -> (Vec<Arc<LocalNode>>, Arc<Cluster>) {
    let members: Vec<Member> = nodes
        .iter()
        .map(|n| Member {
            signer_id: n.signer_id().into(),
            public: n.info().public,
        })
        .collect();
    for n in &nodes {
        n.set_members(members.clone());
    }
    let ids: Vec<String> = members.iter().map(|m| m.signer_id.clone()).collect();
    let group = Group {
        group_id: group_id_of(&ids),
        threshold: 2,
        members,
    };
    let locals: Vec<Arc<LocalNode>> = nodes
        .into_iter()
        .map(|n| Arc::new(LocalNode::new(n)))
        .collect();
    let clients: Vec<Arc<dyn NodeClient>> = locals
        .iter()
        .map(|l| l.clone() as Arc<dyn NodeClient>)
        .collect();
    let cluster = Arc::new(Cluster::new(
        group,
        clients,
        store,
        Arc::new(SystemClock),
        ClusterSettings {
            session_timeout: std::time::Duration::from_secs(20),
            presignatures_per_key: presignatures,
            nonces_per_key: presignatures,
            // Tests that want keys generated ahead of time fill the pool themselves.
            pooled_keys: 0,
            poll_interval: std::time::Duration::from_millis(100),
        },
    ));
    for _ in 0..5 {
        if cluster.prepare_ecdsa().await {
            return (locals, cluster);
        }
    }
    panic!("ECDSA aux info could not be prepared");
}
