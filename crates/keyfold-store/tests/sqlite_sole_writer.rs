//! A SQLite database has one writing process: a server caches what only it can change, so a
//! second server on the same file must fail to start rather than serve stale answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyfold_domain::StoreError;
use keyfold_domain::ports::UserActionStore;
use keyfold_store::{SqlStore, StoreOptions};

#[tokio::test]
async fn a_second_sole_writer_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keyfold.db").display());
    let first = SqlStore::connect(&StoreOptions::new(&url)).await.unwrap();
    first.migrate().await.unwrap();
    assert!(first.sole_writer());

    match SqlStore::connect(&StoreOptions::new(&url)).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("in use by another"), "{m}"),
        other => panic!("a second sole writer opened: {other:?}"),
    }

    // An operator tool writes beside the server: no lock, and nothing cached.
    let mut shared = StoreOptions::new(&url);
    shared.sole_writer = false;
    let tool = SqlStore::connect(&shared).await.unwrap();
    assert!(!tool.sole_writer());
    tool.close().await;

    // The lock lives as long as the store: once it is gone, the next server opens.
    first.close().await;
    drop(first);
    let next = SqlStore::connect(&StoreOptions::new(&url)).await.unwrap();
    assert!(next.sole_writer());

    // PostgreSQL is never a sole writer: replicas share it.
    let pg = keyfold_store::testing::TestDb::postgres().await;
    assert!(!pg.store.sole_writer());
}

#[tokio::test]
async fn in_memory_databases_take_no_lock() {
    let cwd = std::env::current_dir().unwrap();
    let before: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let a = SqlStore::connect(&StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap();
    let b = SqlStore::connect(&StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap();
    assert!(a.sole_writer() && b.sole_writer());
    let after: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "no lock file appeared in {}",
        cwd.display()
    );
}
