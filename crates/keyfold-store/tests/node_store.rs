//! The signer-node store, on SQLite and PostgreSQL (a throwaway database per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::future::join_all;
use keyfold_domain::StoreError;
use keyfold_domain::ports::{NodeRequestRecord, NodeStore};
use keyfold_domain::time::Timestamp;
use keyfold_store::testing::TestNodeDb;

const T0: Timestamp = Timestamp(1_700_000_000_000);

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&TestNodeDb::sqlite().await.store).await; }
        )* use super::TestNodeDb; }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&TestNodeDb::postgres().await.store).await; }
        )* use super::TestNodeDb; }
    };
}

both!(
    meta_first_writer_wins,
    shares_are_written_once,
    primes_and_presignatures_are_used_once,
    requests_are_recorded,
    batches_are_spent_once_with_their_record,
    burning_deletes_use_once_secrets_only
);

async fn meta_first_writer_wins(s: &dyn NodeStore) {
    assert_eq!(s.get_meta("identity").await.unwrap(), None);
    let results =
        join_all((0..4u8).map(|i| async move { s.init_meta("identity", &[i]).await })).await;
    let first = results[0].as_ref().unwrap().clone();
    assert!(
        results.iter().all(|r| r.as_ref().unwrap() == &first),
        "every caller sees the winner"
    );
    assert_eq!(s.get_meta("identity").await.unwrap(), Some(first));
}

async fn shares_are_written_once(s: &dyn NodeStore) {
    s.put_share("key-1", 1, "ECDSA", b"sealed", T0)
        .await
        .unwrap();
    assert_eq!(
        s.put_share("key-1", 1, "ECDSA", b"other", T0).await,
        Err(StoreError::Conflict("node_shares.key".into()))
    );
    assert_eq!(
        s.get_share("key-1").await.unwrap(),
        Some((1, "ECDSA".into(), b"sealed".to_vec()))
    );
    assert_eq!(s.get_share("key-2").await.unwrap(), None);
    s.put_aux("group", b"a1", T0).await.unwrap();
    s.put_aux("group", b"a2", T0).await.unwrap();
    assert_eq!(s.get_aux("group").await.unwrap(), Some(b"a2".to_vec()));
}

async fn primes_and_presignatures_are_used_once(s: &dyn NodeStore) {
    for i in 0..3 {
        s.add_primes(&format!("p{i}"), &[i as u8], T0.plus_secs(i))
            .await
            .unwrap();
    }
    assert_eq!(s.count_primes().await.unwrap(), 3);
    // Peeking leaves the primes in place (a failed aux-info run retries with them)...
    assert_eq!(
        s.oldest_primes().await.unwrap().unwrap(),
        ("p0".to_string(), vec![0u8])
    );
    assert_eq!(s.oldest_primes().await.unwrap().unwrap().0, "p0");
    // ...and concurrent deletes of one set: exactly one wins.
    let deleted = join_all((0..5).map(|_| s.delete_primes("p0"))).await;
    assert_eq!(
        deleted.into_iter().filter(|d| *d.as_ref().unwrap()).count(),
        1
    );
    assert_eq!(s.oldest_primes().await.unwrap().unwrap().0, "p1");
    assert!(s.delete_primes("p1").await.unwrap());
    assert!(s.delete_primes("p2").await.unwrap());
    assert_eq!(s.count_primes().await.unwrap(), 0);
    assert!(s.oldest_primes().await.unwrap().is_none());

    s.put_presignature("ps-1", "key-1", b"presig", T0)
        .await
        .unwrap();
    assert_eq!(
        s.take_presignature("ps-1", "key-other").await.unwrap(),
        None,
        "bound to its key"
    );
    let taken = join_all((0..4).map(|_| s.take_presignature("ps-1", "key-1"))).await;
    assert_eq!(
        taken
            .iter()
            .filter(|t| t.as_ref().unwrap().is_some())
            .count(),
        1
    );
}

async fn requests_are_recorded(s: &dyn NodeStore) {
    let rec = NodeRequestRecord {
        session_id: "ss-1".into(),
        key_id: "key-1".into(),
        protocol: "EcdsaSign".into(),
        evidence: "{}".into(),
        created_at: T0,
    };
    s.record_request(&rec).await.unwrap();
    assert_eq!(s.count_requests("key-1").await.unwrap(), 1);
    assert!(
        s.record_request(&rec).await.is_err(),
        "a session is recorded once"
    );
}

async fn batches_are_spent_once_with_their_record(s: &dyn NodeStore) {
    let batch: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("nc-{i}"), vec![i as u8; 3]))
        .collect();
    s.put_presignatures("key-2", &batch, T0).await.unwrap();
    // A batch is one transaction: one id already taken and nothing of it is stored.
    let clash = vec![("nc-9".to_string(), vec![9]), ("nc-0".to_string(), vec![0])];
    assert!(s.put_presignatures("key-2", &clash, T0).await.is_err());
    assert_eq!(s.take_presignature("nc-9", "key-2").await.unwrap(), None);
    let rec = |i: u8| NodeRequestRecord {
        session_id: format!("nc-{i}"),
        key_id: "key-2".into(),
        protocol: "frost-ed25519/preprocessed-sign".into(),
        evidence: "{}".into(),
        created_at: T0,
    };
    // Racing spends of one id: one gets the bytes, and exactly one request is recorded.
    let r = rec(1);
    let taken =
        join_all((0..4).map(|_| s.take_presignature_recording("nc-1", "key-2", Some(&r)))).await;
    let got: Vec<_> = taken.into_iter().filter_map(|t| t.ok().flatten()).collect();
    assert_eq!(got, vec![vec![1u8; 3]]);
    assert_eq!(s.count_requests("key-2").await.unwrap(), 1);
    // Unknown or wrong-key ids record nothing.
    let r = rec(7);
    assert_eq!(
        s.take_presignature_recording("nc-7", "key-2", Some(&r))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.take_presignature_recording("nc-2", "key-x", Some(&rec(2)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.count_requests("key-2").await.unwrap(), 1);
    // Without a record it is a plain take.
    assert_eq!(
        s.take_presignature_recording("nc-3", "key-2", None)
            .await
            .unwrap(),
        Some(vec![3u8; 3])
    );
    assert_eq!(s.count_requests("key-2").await.unwrap(), 1);
}

async fn burning_deletes_use_once_secrets_only(s: &dyn NodeStore) {
    assert_eq!(s.burn_pooled().await.unwrap(), 0, "nothing to burn");
    s.put_share("key-1", 1, "ECDSA", b"share", T0)
        .await
        .unwrap();
    s.put_aux("group", b"aux", T0).await.unwrap();
    s.add_primes("p0", b"primes", T0).await.unwrap();
    s.put_presignature("ps-1", "key-1", b"presig", T0)
        .await
        .unwrap();
    let nonces: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("n-{i}"), vec![i])).collect();
    s.put_presignatures("key-2", &nonces, T0).await.unwrap();

    assert_eq!(s.burn_pooled().await.unwrap(), 4);
    assert_eq!(s.take_presignature("ps-1", "key-1").await.unwrap(), None);
    assert_eq!(s.take_presignature("n-0", "key-2").await.unwrap(), None);
    // What is not use-once stays: the share, the aux info, the primes.
    assert_eq!(
        s.get_share("key-1").await.unwrap(),
        Some((1, "ECDSA".into(), b"share".to_vec()))
    );
    assert_eq!(s.get_aux("group").await.unwrap(), Some(b"aux".to_vec()));
    assert_eq!(s.count_primes().await.unwrap(), 1);
}
