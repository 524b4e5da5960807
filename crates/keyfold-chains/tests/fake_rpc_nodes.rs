//! Broadcast and status against **fake** Bitcoin Core and Solana JSON-RPC nodes.
//!
//! No Bitcoin node or Solana validator can be installed here, so these tests stand up
//! `FakeNode`, an HTTP server in the test that records every JSON-RPC call and answers with
//! what the real node answers in each situation (shapes from Bitcoin Core's and Solana's RPC
//! documentation). They check what `ChainRpcs` sends (method, parameters, encoding) and how
//! it reads each answer. The transactions themselves are checked by the real consensus code
//! elsewhere (`bitcoinconsensus` in keyfold-server's cluster test, LiteSVM in the Node suite).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyfold_chains::rpc::ChainRpcs;
use keyfold_domain::DomainError;
use keyfold_domain::ports::{BroadcastOutcome, ChainRpc, ChainTxStatus};
use serde_json::{Value, json};

type Answer = Arc<dyn Fn(&str, &Value) -> Result<Value, (i64, String)> + Send + Sync>;

#[derive(Clone)]
struct FakeNode {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    answer: Arc<Mutex<Answer>>,
    http_error: Arc<Mutex<bool>>,
    /// Answers as Bitcoin Core before v28: JSON-RPC 1.0 bodies (`result` and `error` both
    /// present), and errors with HTTP 500 (404 for an unknown method).
    legacy: Arc<Mutex<bool>>,
}

async fn handle(State(node): State<FakeNode>, Json(req): Json<Value>) -> axum::response::Response {
    let method = req["method"].as_str().unwrap_or_default().to_string();
    let params = req["params"].clone();
    node.calls
        .lock()
        .unwrap()
        .push((method.clone(), params.clone()));
    if *node.http_error.lock().unwrap() {
        return (StatusCode::BAD_GATEWAY, "upstream down").into_response();
    }
    let answer = node.answer.lock().unwrap().clone();
    if *node.legacy.lock().unwrap() {
        return match answer(&method, &params) {
            Ok(result) => {
                Json(json!({"result": result, "error": null, "id": req["id"]})).into_response()
            }
            Err((code, message)) => (
                if code == -32601 {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                Json(
                    json!({"result": null, "error": {"code": code, "message": message}, "id": req["id"]}),
                ),
            )
                .into_response(),
        };
    }
    let body = match answer(&method, &params) {
        Ok(result) => json!({"jsonrpc": "2.0", "id": req["id"], "result": result}),
        Err((code, message)) => {
            json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": code, "message": message}})
        }
    };
    Json(body).into_response()
}

impl FakeNode {
    async fn start() -> (Self, String) {
        let node = FakeNode {
            calls: Arc::default(),
            answer: Arc::new(Mutex::new(Arc::new(|_: &str, _: &Value| Ok(Value::Null)))),
            http_error: Arc::default(),
            legacy: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(node.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (node, url)
    }

    fn answer(
        &self,
        f: impl Fn(&str, &Value) -> Result<Value, (i64, String)> + Send + Sync + 'static,
    ) {
        *self.answer.lock().unwrap() = Arc::new(f);
        self.calls.lock().unwrap().clear();
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

fn rpc(network: &str, url: &str) -> ChainRpcs {
    ChainRpcs::new([(network.to_string(), url.to_string())], []).unwrap()
}

#[tokio::test]
async fn bitcoin_core_broadcast_and_status() {
    let (node, url) = FakeNode::start().await;
    let c = rpc("BitcoinSignet", &url);
    let raw = "02000000000101aa";
    let txid = "3f2b1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f";

    // Accepted: the raw hex goes out as is, as the one parameter of sendrawtransaction.
    node.answer(move |m, _| match m {
        "sendrawtransaction" => Ok(json!(txid)),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.broadcast("BitcoinSignet", raw).await.unwrap(),
        BroadcastOutcome::Accepted
    );
    assert_eq!(
        node.calls(),
        vec![("sendrawtransaction".into(), json!([raw]))]
    );

    // Sent before: Bitcoin Core says so, and that counts as accepted (a retry is harmless).
    for msg in ["Transaction already in block chain", "txn-already-known"] {
        node.answer(move |_, _| Err((-27, msg.into())));
        assert_eq!(
            c.broadcast("BitcoinSignet", raw).await.unwrap(),
            BroadcastOutcome::Accepted,
            "{msg}"
        );
    }
    // Refused for good: the node's reason is kept.
    node.answer(|_, _| Err((-25, "bad-txns-inputs-missingorspent".into())));
    match c.broadcast("BitcoinSignet", raw).await.unwrap() {
        BroadcastOutcome::Rejected { reason, nonce_used } => {
            assert!(reason.contains("missingorspent"));
            assert!(!nonce_used);
        }
        other => panic!("{other:?}"),
    }
    // Endpoint down: a 503-class error that never names the URL.
    *node.http_error.lock().unwrap() = true;
    match c.broadcast("BitcoinSignet", raw).await {
        Err(DomainError::Unavailable(msg)) => assert!(!msg.contains("127.0.0.1"), "{msg}"),
        other => panic!("{other:?}"),
    }
    *node.http_error.lock().unwrap() = false;

    // Status: unknown (-5), in the mempool, then in block 201 (height from getblockheader).
    node.answer(|_, _| Err((-5, "No such mempool or blockchain transaction".into())));
    assert_eq!(
        c.transaction_status("BitcoinSignet", txid).await.unwrap(),
        ChainTxStatus::Unknown
    );
    node.answer(move |m, _| match m {
        "getrawtransaction" => Ok(json!({"txid": txid, "hex": raw})),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.transaction_status("BitcoinSignet", txid).await.unwrap(),
        ChainTxStatus::Pending
    );
    assert_eq!(
        node.calls()[0],
        ("getrawtransaction".into(), json!([txid, true]))
    );
    node.answer(move |m, p| match m {
        "getrawtransaction" => Ok(json!({
            "txid": txid, "blockhash": "00000000000000000001", "confirmations": 3,
            "blocktime": 1_700_000_000
        })),
        "getblockheader" => {
            assert_eq!(p, &json!(["00000000000000000001"]));
            Ok(json!({"hash": "00000000000000000001", "height": 201}))
        }
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.transaction_status("BitcoinSignet", txid).await.unwrap(),
        ChainTxStatus::Confirmed {
            block_number: 201,
            block_time: Some(1_700_000_000_000),
            fee: None
        }
    );
}

#[tokio::test]
async fn solana_broadcast_and_status() {
    use base64::Engine as _;
    let (node, url) = FakeNode::start().await;
    let c = rpc("SolanaDevnet", &url);
    let signed_hex = "0x01020304";
    let sig =
        "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";

    node.answer(move |m, _| match m {
        "sendTransaction" => Ok(json!(sig)),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.broadcast("SolanaDevnet", signed_hex).await.unwrap(),
        BroadcastOutcome::Accepted
    );
    let (method, params) = node.calls()[0].clone();
    assert_eq!(method, "sendTransaction");
    assert_eq!(
        params[0],
        json!(base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3, 4]))
    );
    assert_eq!(params[1]["encoding"], "base64");

    node.answer(|_, _| {
        Err((
            -32002,
            "Transaction simulation failed: This transaction has already been processed".into(),
        ))
    });
    assert_eq!(
        c.broadcast("SolanaDevnet", signed_hex).await.unwrap(),
        BroadcastOutcome::Accepted
    );
    node.answer(|_, _| {
        Err((
            -32002,
            "Transaction simulation failed: Blockhash not found".into(),
        ))
    });
    assert!(matches!(
        c.broadcast("SolanaDevnet", signed_hex).await.unwrap(),
        BroadcastOutcome::Rejected {
            nonce_used: false,
            ..
        }
    ));

    // Status through getSignatureStatuses (with history), fee from getTransaction.
    let status = |v: Value| {
        move |m: &str, p: &Value| match m {
            "getSignatureStatuses" => {
                assert_eq!(p[1]["searchTransactionHistory"], true);
                Ok(json!({"context": {"slot": 99}, "value": [v.clone()]}))
            }
            "getTransaction" => Ok(
                json!({"slot": 90, "blockTime": 1_700_000_001, "meta": {"fee": 5000, "err": null}}),
            ),
            _ => Err((-32601, "Method not found".into())),
        }
    };
    node.answer(status(Value::Null));
    assert_eq!(
        c.transaction_status("SolanaDevnet", sig).await.unwrap(),
        ChainTxStatus::Unknown
    );
    node.answer(status(
        json!({"slot": 90, "confirmations": 0, "err": null, "confirmationStatus": "processed"}),
    ));
    assert_eq!(
        c.transaction_status("SolanaDevnet", sig).await.unwrap(),
        ChainTxStatus::Pending
    );
    node.answer(status(
        json!({"slot": 90, "confirmations": 10, "err": null, "confirmationStatus": "confirmed"}),
    ));
    assert_eq!(
        c.transaction_status("SolanaDevnet", sig).await.unwrap(),
        ChainTxStatus::Confirmed {
            block_number: 90,
            block_time: Some(1_700_000_001_000),
            fee: Some("5000".into())
        }
    );
    node.answer(status(json!({"slot": 90, "confirmations": null, "err": {"InstructionError": [0, "Custom"]}, "confirmationStatus": "finalized"})));
    assert!(matches!(
        c.transaction_status("SolanaDevnet", sig).await.unwrap(),
        ChainTxStatus::Reverted {
            block_number: 90,
            ..
        }
    ));

    // Balance in lamports.
    node.answer(|m, _| match m {
        "getBalance" => Ok(json!({"context": {"slot": 1}, "value": 1_500_000_000u64})),
        _ => Err((-32601, "Method not found".into())),
    });
    let assets = c
        .balances("SolanaDevnet", "11111111111111111111111111111111", &[])
        .await
        .unwrap();
    let v = serde_json::to_value(&assets).unwrap();
    assert_eq!(v[0]["kind"], "Native");
    assert_eq!(v[0]["balance"], "1500000000");
    assert_eq!(v[0]["decimals"], 9);
    assert_eq!(v[0]["symbol"], "SOL");
}

/// `GET /networks/fees` on Bitcoin: one `estimatesmartfee` per priority (targets 24, 6, 2,
/// conservative), BTC/kvB read as sat/vB; a node without estimates yet (a young chain) falls
/// back to its mempool's minimum fee.
#[tokio::test]
async fn bitcoin_fees_come_from_estimatesmartfee() {
    use keyfold_types::networks::FeesResponse;
    let (node, url) = FakeNode::start().await;
    let c = rpc("BitcoinSignet", &url);
    node.answer(|m, p| match m {
        "estimatesmartfee" => Ok(match p[0].as_u64().unwrap() {
            24 => json!({"feerate": 0.00001, "blocks": 24}),
            6 => json!({"feerate": 0.00012345, "blocks": 6}),
            2 => json!({"feerate": 0.0005, "blocks": 2}),
            other => panic!("target {other}"),
        }),
        "getblockcount" => Ok(json!(840_000)),
        _ => Err((-32601, "Method not found".into())),
    });
    let FeesResponse::Bitcoin {
        network,
        block_number,
        slow,
        standard,
        fast,
    } = c.fees("BitcoinSignet").await.unwrap()
    else {
        panic!("not Bitcoin fees");
    };
    assert_eq!((network.as_str(), block_number), ("BitcoinSignet", 840_000));
    assert_eq!((slow.fee_rate.as_str(), slow.block_horizon), ("1", 24));
    assert_eq!(
        (standard.fee_rate.as_str(), standard.block_horizon),
        ("12.345", 6)
    );
    assert_eq!((fast.fee_rate.as_str(), fast.block_horizon), ("50", 2));
    for (m, p) in node.calls() {
        if m == "estimatesmartfee" {
            assert_eq!(p[1], "conservative");
        }
    }

    node.answer(|m, _| match m {
        "estimatesmartfee" => {
            Ok(json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0}))
        }
        "getmempoolinfo" => Ok(json!({"mempoolminfee": 0.00002, "minrelaytxfee": 0.00001})),
        "getblockcount" => Ok(json!(12)),
        _ => Err((-32601, "Method not found".into())),
    });
    let FeesResponse::Bitcoin { standard, .. } = c.fees("BitcoinSignet").await.unwrap() else {
        panic!("not Bitcoin fees");
    };
    assert_eq!(standard.fee_rate, "2");
}

/// `GET /networks/fees` on Solana: percentiles of `getRecentPrioritizationFees`; none at all
/// is a price of 0.
#[tokio::test]
async fn solana_fees_are_recent_prioritization_percentiles() {
    use keyfold_types::networks::FeesResponse;
    let (node, url) = FakeNode::start().await;
    let c = rpc("SolanaDevnet", &url);
    node.answer(|m, _| match m {
        "getRecentPrioritizationFees" => {
            let paid = [0u64, 0, 10, 20, 30, 40, 50, 1000, 5];
            Ok(json!(
                paid.iter()
                    .enumerate()
                    .map(|(i, fee)| json!({"slot": 100 + i, "prioritizationFee": fee}))
                    .collect::<Vec<_>>()
            ))
        }
        "getSlot" => Ok(json!(4242)),
        _ => Err((-32601, "Method not found".into())),
    });
    let FeesResponse::Solana {
        block_number,
        slow,
        standard,
        fast,
        ..
    } = c.fees("SolanaDevnet").await.unwrap()
    else {
        panic!("not Solana fees");
    };
    assert_eq!(block_number, 4242);
    // Sorted: 0 0 5 10 20 30 40 50 1000.
    assert_eq!(slow.compute_unit_price, "5");
    assert_eq!(standard.compute_unit_price, "20");
    assert_eq!(fast.compute_unit_price, "40");

    node.answer(|m, _| match m {
        "getRecentPrioritizationFees" => Ok(json!([])),
        "getSlot" => Ok(json!(1)),
        _ => Err((-32601, "Method not found".into())),
    });
    let FeesResponse::Solana { fast, .. } = c.fees("SolanaDevnet").await.unwrap() else {
        panic!("not Solana fees");
    };
    assert_eq!(fast.compute_unit_price, "0");
    // A lost Solana transaction whose re-send is refused (its blockhash expired) expires.
    assert!(c.lost_transactions_expire("SolanaDevnet"));
}

/// Bitcoin Core before v28 (JSON-RPC 1.0 answers, errors as HTTP 500): a refusal is still the
/// node's verdict (the transfer fails and frees its coins) rather than an outage, a success
/// with `"error": null` is a success, and a mined transaction on a node without `-txindex`
/// is found by its unspent outputs. A gateway's HTTP 500 without a JSON-RPC body, or the
/// node's internal error, is an outage.
#[tokio::test]
async fn bitcoin_core_before_28_and_without_txindex() {
    let (node, url) = FakeNode::start().await;
    *node.legacy.lock().unwrap() = true;
    let c = rpc("BitcoinSignet", &url);
    let txid = "3f2b1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f";
    node.answer(move |m, _| match m {
        "sendrawtransaction" => Ok(json!(txid)),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.broadcast("BitcoinSignet", "0200").await.unwrap(),
        BroadcastOutcome::Accepted
    );
    node.answer(|m, _| match m {
        "sendrawtransaction" => Err((-26, "min relay fee not met".into())),
        _ => Err((-32601, "Method not found".into())),
    });
    assert!(matches!(
        c.broadcast("BitcoinSignet", "0200").await.unwrap(),
        BroadcastOutcome::Rejected { reason, .. } if reason.contains("min relay fee")
    ));
    // Mined already, in either wording: accepted.
    for said in [
        "transaction already in block chain",
        "Transaction outputs already in utxo set",
    ] {
        node.answer(move |m, _| match m {
            "sendrawtransaction" => Err((-27, said.into())),
            _ => Err((-32601, "Method not found".into())),
        });
        assert_eq!(
            c.broadcast("BitcoinSignet", "0200").await.unwrap(),
            BroadcastOutcome::Accepted,
            "{said}"
        );
    }
    // The node's own trouble is an outage, not a verdict: its internal error, warming up
    // after a restart (-28), anything that is not a refusal code (-22, -25, -26). The
    // transfer keeps its bytes and its coins.
    for (code, said) in [
        (-32603, "Internal error"),
        (-28, "Loading block index..."),
        (-1, "something odd"),
    ] {
        node.answer(move |_, _| Err((code, said.into())));
        assert!(
            matches!(
                c.broadcast("BitcoinSignet", "0200").await,
                Err(DomainError::Unavailable(_))
            ),
            "{code}"
        );
        // Its status is not "unknown" (which would send it again) either.
        assert!(
            matches!(
                c.transaction_status("BitcoinSignet", txid).await,
                Err(DomainError::Unavailable(_))
            ),
            "{code}"
        );
    }
    // A Bitcoin transaction the node lost and now refuses is never given up on (it may be in
    // other nodes' mempools, or mined with its outputs spent); EVM and Solana ones expire.
    assert!(!c.lost_transactions_expire("BitcoinSignet"));

    // No -txindex: getrawtransaction knows mempool transactions only; a mined one is found
    // through its first unspent output (vout 1 here: the payment was spent since).
    node.answer(move |m, p| match m {
        "getrawtransaction" => Err((
            -5,
            "No such mempool transaction. Use -txindex or provide a block hash".into(),
        )),
        "gettxout" => {
            assert_eq!(p[2], false, "the UTXO set, not the mempool");
            Ok(if p[1] == 1 {
                json!({"bestblock": "00bb", "confirmations": 3, "value": 0.0001})
            } else {
                Value::Null
            })
        }
        "getblockheader" if p[0] == "00bb" => Ok(json!({"height": 500})),
        "getblockhash" => {
            assert_eq!(p[0], 498);
            Ok(json!("00aa"))
        }
        "getblockheader" if p[0] == "00aa" => Ok(json!({"height": 498, "time": 1_700_000_000})),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.transaction_status("BitcoinSignet", txid).await.unwrap(),
        ChainTxStatus::Confirmed {
            block_number: 498,
            block_time: Some(1_700_000_000_000),
            fee: None
        }
    );
    // Not mined, not in the mempool: unknown (the tracker sends it again).
    node.answer(|m, _| match m {
        "getrawtransaction" => Err((-5, "No such mempool or blockchain transaction".into())),
        "gettxout" => Ok(Value::Null),
        _ => Err((-32601, "Method not found".into())),
    });
    assert_eq!(
        c.transaction_status("BitcoinSignet", txid).await.unwrap(),
        ChainTxStatus::Unknown
    );

    // A gateway's HTTP error without a JSON-RPC body is an outage.
    *node.http_error.lock().unwrap() = true;
    assert!(matches!(
        c.broadcast("BitcoinSignet", "0200").await,
        Err(DomainError::Unavailable(_))
    ));
}
