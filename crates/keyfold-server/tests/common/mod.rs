//! The test harness: a real server on a loopback port over a throwaway database (SQLite or
//! PostgreSQL), an organization bootstrapped with a root key credential, and a clock the
//! test can move.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use keyfold_auth::bootstrap::{NewOrganization, new_organization};
use keyfold_auth::sealer::Sealer;
use keyfold_domain::ports::Store;
use keyfold_domain::time::{Clock, ManualClock, SystemClock};
use keyfold_sdk::{Client, KeySigner};
use keyfold_server::{Config, Server};
use keyfold_store::testing::TestDb;

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
    _db: TestDb,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
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
        let server = Server::build(
            config,
            store.clone(),
            clock.clone() as Arc<dyn Clock>,
            sealer,
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
