//! Threshold signing through the API with three in-process signer nodes (each on its own
//! database): signers going down, a tampered share, a signer dying mid-session, idempotent
//! retries and the presignature pool. Every signature is checked with `k256` or
//! `ed25519-dalek` against the key's public key — never with Keyfold's own verification.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::{Backend, Harness};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use keyfold_sdk::{Client, Error};
use keyfold_signer::protocol::{NodeError, Protocol, SignInput, StartSession};
use keyfold_types::auth::HttpMethod;
use serde_json::{Value, json};
use sha3::Digest;

async fn create_key(c: &Client, scheme: &str, curve: &str) -> Value {
    let key: Value = c
        .signed(
            HttpMethod::Post,
            "/keys",
            Some(&json!({"scheme": scheme, "curve": curve})),
        )
        .await
        .unwrap();
    assert_eq!(key["status"], "Active", "{key}");
    key
}

async fn sign(c: &Client, key_id: &str, body: Value) -> Result<Value, Error> {
    c.signed(
        HttpMethod::Post,
        &format!("/keys/{key_id}/signatures"),
        Some(&body),
    )
    .await
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

/// Checks an ECDSA signature response over `digest` against the key, and that `recid`
/// recovers that key.
fn verify_ecdsa(public_key_hex: &str, digest: &[u8; 32], res: &Value) {
    assert_eq!(res["status"], "Signed", "{res}");
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&unhex(public_key_hex)).unwrap();
    let r = unhex(res["signature"]["r"].as_str().unwrap());
    let s = unhex(res["signature"]["s"].as_str().unwrap());
    let sig = k256::ecdsa::Signature::from_scalars(
        *k256::FieldBytes::from_slice(&r),
        *k256::FieldBytes::from_slice(&s),
    )
    .unwrap();
    vk.verify_prehash(digest, &sig)
        .expect("k256 verifies the threshold signature");
    let recid =
        k256::ecdsa::RecoveryId::from_byte(res["signature"]["recid"].as_u64().unwrap() as u8)
            .unwrap();
    let recovered = k256::ecdsa::VerifyingKey::recover_from_prehash(digest, &sig, recid).unwrap();
    assert_eq!(recovered, vk);
}

fn verify_ed25519(public_key_hex: &str, message: &[u8], res: &Value) {
    assert_eq!(res["status"], "Signed", "{res}");
    let pk: [u8; 32] = unhex(public_key_hex).try_into().unwrap();
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
    let sig: [u8; 64] = unhex(res["signature"]["encoded"].as_str().unwrap())
        .try_into()
        .unwrap();
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("ed25519-dalek verifies the threshold signature");
}

fn digest_of(tag: &str) -> [u8; 32] {
    sha3::Keccak256::digest(tag.as_bytes()).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_signs_with_any_two_of_three_and_fails_cleanly_with_one() {
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    let key = create_key(&c, "ECDSA", "secp256k1").await;
    let (id, pk) = (
        key["id"].as_str().unwrap(),
        key["publicKey"].as_str().unwrap(),
    );

    let d = digest_of("all up");
    let res = sign(&c, id, json!({"kind": "Hash", "hash": hex::encode(d)}))
        .await
        .unwrap();
    verify_ecdsa(pk, &d, &res);

    // Each signer down in turn: the other two sign.
    for down in 0..3 {
        h.signers[down].set_down(true);
        let d = digest_of(&format!("signer {down} down"));
        let res = sign(&c, id, json!({"kind": "Hash", "hash": hex::encode(d)}))
            .await
            .unwrap();
        verify_ecdsa(pk, &d, &res);
        h.signers[down].set_down(false);
    }

    // Two down: no quorum. A clean 503 and a Failed record, no signature.
    h.signers[0].set_down(true);
    h.signers[1].set_down(true);
    let err = sign(
        &c,
        id,
        json!({"kind": "Hash", "hash": hex::encode(digest_of("no quorum"))}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    h.signers[0].set_down(false);
    h.signers[1].set_down(false);
    let list: Value = c.get(&format!("/keys/{id}/signatures")).await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    let failed: Vec<&Value> = items.iter().filter(|i| i["status"] == "Failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].get("signature").is_none_or(Value::is_null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_share_is_refused_and_the_other_two_sign() {
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    let ed = create_key(&c, "EdDSA", "ed25519").await;
    let ec = create_key(&c, "ECDSA", "secp256k1").await;
    for key in [&ed, &ec] {
        h.signer_dbs[0]
            .flip_share_byte(key["id"].as_str().unwrap())
            .await;
    }
    h.signers[0].node().forget_cached_shares();

    // The node itself refuses to use the share.
    let group = h.cluster.as_ref().unwrap().group().clone();
    for (key, protocol, input) in [
        (
            &ed,
            Protocol::Ed25519Sign,
            SignInput::Message {
                message: "00".into(),
                taproot: false,
                merkle_root: None,
            },
        ),
        (
            &ec,
            Protocol::EcdsaSign,
            SignInput::Digest {
                digest: hex::encode([7u8; 32]),
            },
        ),
    ] {
        let err = h.signers[0]
            .node()
            .start(StartSession {
                session_id: hex::encode(rand::random::<[u8; 32]>()),
                protocol,
                group: group.clone(),
                key_id: Some(key["id"].as_str().unwrap().into()),
                signers: vec![0, 1],
                input: Some(input),
                presignature_id: None,
                evidence: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, NodeError::Tampered { .. }), "{err:?}");
    }

    // Through the API: the coordinator drops signer 0 and signs with the other two.
    let msg = b"tamper-evident";
    let res = sign(
        &c,
        ed["id"].as_str().unwrap(),
        json!({"kind": "Message", "message": hex::encode(msg)}),
    )
    .await
    .unwrap();
    verify_ed25519(ed["publicKey"].as_str().unwrap(), msg, &res);
    let d = digest_of("tamper-evident");
    let res = sign(
        &c,
        ec["id"].as_str().unwrap(),
        json!({"kind": "Hash", "hash": hex::encode(d)}),
    )
    .await
    .unwrap();
    verify_ecdsa(ec["publicKey"].as_str().unwrap(), &d, &res);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_dying_mid_session_never_yields_two_signatures_for_one_external_id() {
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    for scheme in [("ECDSA", "secp256k1"), ("EdDSA", "ed25519")] {
        let key = create_key(&c, scheme.0, scheme.1).await;
        let id = key["id"].as_str().unwrap();
        for step in 0..2 {
            // Signer 0 answers `step` messages, then dies while computing the next one.
            h.signers[0].die_after_steps(step);
            let ext = format!("pay-{}-{step}", scheme.0);
            let body =
                json!({"kind": "Hash", "hash": hex::encode(digest_of(&ext)), "externalId": ext});
            let first = sign(&c, id, body.clone()).await;
            h.signers[0].set_down(false);
            h.signers[0].die_after_steps(-1);
            // The retry (and a concurrent second retry) answer with the same record.
            let (a, b) = tokio::join!(sign(&c, id, body.clone()), sign(&c, id, body.clone()));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a["id"], b["id"]);
            assert_eq!(a["signature"], b["signature"]);
            match &first {
                Ok(f) => {
                    assert_eq!(f["id"], a["id"]);
                    assert_eq!(f["status"], "Signed");
                }
                Err(e) => {
                    // Failed cleanly: the record says so and the retry does not sign again.
                    assert!(matches!(e.status(), Some(500..=599)), "{e}");
                    assert_eq!(a["status"], "Failed");
                }
            }
            let list: Value = c
                .get(&format!("/keys/{id}/signatures?limit=100"))
                .await
                .unwrap();
            let same: Vec<&Value> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["externalId"] == ext.as_str())
                .collect();
            assert_eq!(same.len(), 1, "{list}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presignatures_are_pooled_and_never_used_twice() {
    let h = Harness::start_signing(Backend::Sqlite, 3).await;
    let c = h.root().await;
    let key = create_key(&c, "ECDSA", "secp256k1").await;
    let (id, pk) = (
        key["id"].as_str().unwrap().to_string(),
        key["publicKey"].as_str().unwrap().to_string(),
    );
    // The background task fills the pool (bounded generously: a presignature takes seconds
    // of CPU, and CI runs the other cluster tests alongside on 2 cores).
    pool_reaches(&h, &id, 3, std::time::Duration::from_secs(300)).await;
    // Concurrent signatures: every one verifies and all use different nonces (a reused
    // presignature would repeat `r`).
    let futs = (0..6).map(|i| {
        let c = &c;
        let id = id.clone();
        async move {
            let d = digest_of(&format!("pooled {i}"));
            (
                d,
                sign(c, &id, json!({"kind": "Hash", "hash": hex::encode(d)}))
                    .await
                    .unwrap(),
            )
        }
    });
    let results = futures::future::join_all(futs).await;
    let mut rs = HashSet::new();
    for (d, res) in &results {
        verify_ecdsa(&pk, d, res);
        assert!(
            rs.insert(res["signature"]["r"].as_str().unwrap().to_string()),
            "nonce reused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_wallet_on_postgres_signs_and_recovers_to_its_address() {
    let h = Harness::start_signing(Backend::Postgres, 1).await;
    let c = h.root().await;
    let w: Value = c
        .signed(
            HttpMethod::Post,
            "/wallets",
            Some(&json!({"network": "EthereumSepolia"})),
        )
        .await
        .unwrap();
    assert_eq!(w["status"], "Active");
    let pk = w["signingKey"]["publicKey"].as_str().unwrap();
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&unhex(pk)).unwrap();
    let point = vk.to_encoded_point(false);
    let addr = &sha3::Keccak256::digest(&point.as_bytes()[1..])[12..];
    assert_eq!(
        w["address"].as_str().unwrap().to_lowercase(),
        format!("0x{}", hex::encode(addr))
    );
    let msg = b"hello keyfold";
    let res: Value = c
        .signed(
            HttpMethod::Post,
            &format!("/wallets/{}/signatures", w["id"].as_str().unwrap()),
            Some(&json!({"kind": "Message", "message": format!("0x{}", hex::encode(msg))})),
        )
        .await
        .unwrap();
    let mut pre = format!("\x19Ethereum Signed Message:\n{}", msg.len()).into_bytes();
    pre.extend_from_slice(msg);
    verify_ecdsa(pk, &sha3::Keccak256::digest(&pre).into(), &res);
    // Unknown wallet and bad input: clear 4xx.
    let e = c
        .signed::<_, Value>(
            HttpMethod::Post,
            "/wallets/wa-00000-00000-0000000000000000/signatures",
            Some(&json!({"kind": "Hash", "hash": hex::encode([0u8; 32])})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = c
        .signed::<_, Value>(
            HttpMethod::Post,
            &format!("/wallets/{}/signatures", w["id"].as_str().unwrap()),
            Some(&json!({"kind": "Hash", "hash": "abcd"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
}

async fn create_wallet(c: &Client, body: Value) -> Value {
    let w: Value = c
        .signed(HttpMethod::Post, "/wallets", Some(&body))
        .await
        .unwrap();
    assert_eq!(w["status"], "Active", "{w}");
    w
}

async fn sign_wallet(c: &Client, wallet_id: &str, body: Value) -> Result<Value, Error> {
    c.signed(
        HttpMethod::Post,
        &format!("/wallets/{wallet_id}/signatures"),
        Some(&body),
    )
    .await
}

/// Bitcoin and Solana wallets: addresses re-derived with the `bitcoin` crate and base58, and
/// signatures checked with k256 (ECDSA DER, BIP-340 under the address's own output key) and
/// ed25519-dalek. The P2TR check is the one that matters: the signers' BIP-341 tweak
/// (keyfold-mpc) must agree with the address the wallet advertises (keyfold-chains).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_and_solana_wallets_have_real_addresses_and_sign() {
    use std::str::FromStr;
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    let d = digest_of("bitcoin sighash stand-in");

    // Bitcoin, ECDSA (the default): P2WPKH, DER low-S `encoded`.
    let w = create_wallet(&c, json!({"network": "Bitcoin"})).await;
    let pk = unhex(w["signingKey"]["publicKey"].as_str().unwrap());
    let expected = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey::from_slice(&pk).unwrap(),
        bitcoin::KnownHrp::Mainnet,
    );
    assert_eq!(w["address"], expected.to_string(), "{w}");
    assert_eq!(w["signingKey"]["scheme"], "ECDSA");
    let res = sign_wallet(
        &c,
        w["id"].as_str().unwrap(),
        json!({"kind": "Hash", "hash": hex::encode(d)}),
    )
    .await
    .unwrap();
    verify_ecdsa(w["signingKey"]["publicKey"].as_str().unwrap(), &d, &res);
    let der =
        k256::ecdsa::Signature::from_der(&unhex(res["signature"]["encoded"].as_str().unwrap()))
            .expect("encoded is DER");
    assert!(der.normalize_s().is_none(), "DER signature has low S");
    k256::ecdsa::VerifyingKey::from_sec1_bytes(&pk)
        .unwrap()
        .verify_prehash(&d, &der)
        .unwrap();
    // Bitcoin wallets do not sign EVM kinds or bare messages.
    for body in [
        json!({"kind": "Message", "message": "0x00"}),
        json!({"kind": "Transaction", "transaction": "0x00"}),
    ] {
        let err = sign_wallet(&c, w["id"].as_str().unwrap(), body)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
    }

    // Bitcoin testnet4, Schnorr: P2TR; a key-path signature verifies under the output key
    // that the address itself carries.
    let w = create_wallet(
        &c,
        json!({"network": "BitcoinTestnet4", "signingKey": {"scheme": "Schnorr", "curve": "secp256k1"}}),
    )
    .await;
    let address = w["address"].as_str().unwrap();
    assert!(address.starts_with("tb1p"), "{w}");
    let parsed = bitcoin::Address::from_str(address)
        .unwrap()
        .require_network(bitcoin::Network::Testnet4)
        .unwrap();
    let program = parsed.witness_program().unwrap();
    assert!(program.is_p2tr());
    let output_key = k256::schnorr::VerifyingKey::from_bytes(program.program().as_bytes()).unwrap();
    let res = sign_wallet(
        &c,
        w["id"].as_str().unwrap(),
        json!({"kind": "Hash", "hash": hex::encode(d), "taprootMerkleRoot": ""}),
    )
    .await
    .unwrap();
    assert_eq!(res["status"], "Signed", "{res}");
    let sig = k256::schnorr::Signature::try_from(
        unhex(res["signature"]["encoded"].as_str().unwrap()).as_slice(),
    )
    .unwrap();
    output_key
        .verify_prehash(&d, &sig)
        .expect("BIP-340 signature under the address's output key");

    // Solana: base58 of the Ed25519 key; Message signs the bytes themselves.
    let w = create_wallet(&c, json!({"network": "SolanaDevnet"})).await;
    let pk_hex = w["signingKey"]["publicKey"].as_str().unwrap();
    assert_eq!(
        bs58::decode(w["address"].as_str().unwrap())
            .into_vec()
            .unwrap(),
        unhex(pk_hex),
        "{w}"
    );
    let res = sign_wallet(
        &c,
        w["id"].as_str().unwrap(),
        json!({"kind": "Message", "message": "0x68656c6c6f"}),
    )
    .await
    .unwrap();
    verify_ed25519(pk_hex, b"hello", &res);
    // An ECDSA key cannot back a Solana wallet.
    let err = c
        .signed::<_, Value>(
            HttpMethod::Post,
            "/wallets",
            Some(&json!({"network": "Solana", "signingKey": {"scheme": "ECDSA", "curve": "secp256k1"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

/// A PSBT spending two outputs of `wallet_script` (inputs 0 and 2) and one foreign output
/// (input 1), every input with its `witness_utxo`; and the spent outputs.
fn psbt_spending(wallet_script: &bitcoin::ScriptBuf) -> (bitcoin::Psbt, Vec<bitcoin::TxOut>) {
    use bitcoin::hashes::Hash;
    let foreign = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([7; 20]));
    let spent = vec![
        bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(50_000),
            script_pubkey: wallet_script.clone(),
        },
        bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(20_000),
            script_pubkey: foreign.clone(),
        },
        bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(30_000),
            script_pubkey: wallet_script.clone(),
        },
    ];
    let tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: (0..3u8)
            .map(|i| bitcoin::TxIn {
                previous_output: bitcoin::OutPoint {
                    txid: bitcoin::Txid::from_byte_array([i + 1; 32]),
                    vout: u32::from(i),
                },
                sequence: bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME,
                ..Default::default()
            })
            .collect(),
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(99_000),
            script_pubkey: foreign,
        }],
    };
    let mut psbt = bitcoin::Psbt::from_unsigned_tx(tx).unwrap();
    for (input, utxo) in psbt.inputs.iter_mut().zip(&spent) {
        input.witness_utxo = Some(utxo.clone());
    }
    (psbt, spent)
}

/// Bitcoin Core's script interpreter (libbitcoinconsensus) on input `index` of `tx`.
fn consensus_verify(
    tx: &bitcoin::Transaction,
    spent: &[bitcoin::TxOut],
    index: usize,
    taproot: bool,
) -> Result<(), bitcoinconsensus::Error> {
    let bytes = bitcoin::consensus::encode::serialize(tx);
    let utxos: Vec<bitcoinconsensus::Utxo> = spent
        .iter()
        .map(|o| bitcoinconsensus::Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    bitcoinconsensus::verify(
        spent[index].script_pubkey.as_bytes(),
        spent[index].value.to_sat(),
        &bytes,
        taproot.then_some(utxos.as_slice()),
        index,
    )
}

/// `Psbt` signatures: every input the wallet owns is signed (and only those), the finalized
/// transaction passes Bitcoin Core's own script checks for P2WPKH and P2TR, a tampered copy
/// does not, and PSBTs with nothing to sign or that do not parse are a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psbts_are_signed_input_by_input_and_pass_bitcoin_core_script_checks() {
    use std::str::FromStr;
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;

    for scheme in ["ECDSA", "Schnorr"] {
        let w = create_wallet(
            &c,
            json!({"network": "BitcoinSignet", "signingKey": {"scheme": scheme, "curve": "secp256k1"}}),
        )
        .await;
        let id = w["id"].as_str().unwrap();
        let script = bitcoin::Address::from_str(w["address"].as_str().unwrap())
            .unwrap()
            .require_network(bitcoin::Network::Signet)
            .unwrap()
            .script_pubkey();
        let (psbt, spent) = psbt_spending(&script);
        let res = sign_wallet(
            &c,
            id,
            json!({"kind": "Psbt", "psbt": hex::encode(psbt.serialize())}),
        )
        .await
        .unwrap();
        assert_eq!(res["status"], "Signed", "{res}");
        assert_eq!(res["signatures"].as_array().unwrap().len(), 2, "{res}");
        let signed =
            bitcoin::Psbt::deserialize(&unhex(res["signedData"].as_str().unwrap())).unwrap();
        assert_eq!(
            signed.unsigned_tx, psbt.unsigned_tx,
            "the transaction is unchanged"
        );

        // Finalize by hand (the caller's job) and run Bitcoin Core's interpreter.
        let mut tx = signed.unsigned_tx.clone();
        for i in [0, 2] {
            let input = &signed.inputs[i];
            tx.input[i].witness = if scheme == "ECDSA" {
                assert_eq!(input.partial_sigs.len(), 1, "input {i}");
                let (pk, sig) = input.partial_sigs.iter().next().unwrap();
                bitcoin::Witness::p2wpkh(sig, &pk.inner)
            } else {
                bitcoin::Witness::p2tr_key_spend(&input.tap_key_sig.unwrap())
            };
        }
        let foreign = &signed.inputs[1];
        assert!(foreign.partial_sigs.is_empty() && foreign.tap_key_sig.is_none());
        let taproot = scheme == "Schnorr";
        for i in [0, 2] {
            consensus_verify(&tx, &spent, i, taproot)
                .unwrap_or_else(|e| panic!("{scheme} input {i}: {e:?}"));
        }
        // Tampered: one more satoshi to the payee invalidates both signatures.
        let mut tampered = tx.clone();
        tampered.output[0].value = bitcoin::Amount::from_sat(99_001);
        for i in [0, 2] {
            assert!(consensus_verify(&tampered, &spent, i, taproot).is_err());
        }

        // SIGHASH_NONE on one of the wallet's inputs would let anyone redirect its coins: 400.
        let (mut sneaky, _) = psbt_spending(&script);
        sneaky.inputs[2].sighash_type = Some(if taproot {
            bitcoin::psbt::PsbtSighashType::from(bitcoin::TapSighashType::None)
        } else {
            bitcoin::psbt::PsbtSighashType::from(bitcoin::EcdsaSighashType::None)
        });
        let err = sign_wallet(
            &c,
            id,
            json!({"kind": "Psbt", "psbt": hex::encode(sneaky.serialize())}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        assert!(err.to_string().contains("input 2"), "{err}");

        // Nothing of this wallet's, or not a PSBT at all: 400.
        let other =
            bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::hashes::Hash::from_byte_array([9; 20]));
        let (foreign_psbt, _) = psbt_spending(&other);
        for bad in [hex::encode(foreign_psbt.serialize()), "70736274ff00".into()] {
            let err = sign_wallet(&c, id, json!({"kind": "Psbt", "psbt": bad}))
                .await
                .unwrap_err();
            assert_eq!(err.status(), Some(400), "{err}");
        }
    }
}

/// A **fake** Bitcoin Core JSON-RPC endpoint (no Bitcoin node can run here): it keeps every
/// transaction sent with `sendrawtransaction` and reports them confirmed in block 201. What
/// Keyfold sent is then checked by Bitcoin Core's own script interpreter (libbitcoinconsensus).
async fn fake_bitcoin_core() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::Json;
    use axum::extract::State;
    type Sent = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
    async fn rpc(State(sent): State<Sent>, Json(req): Json<Value>) -> Json<Value> {
        let p = &req["params"];
        let result = match req["method"].as_str().unwrap_or_default() {
            "sendrawtransaction" => {
                let raw = p[0].as_str().unwrap().to_string();
                let tx: bitcoin::Transaction =
                    bitcoin::consensus::encode::deserialize(&hex::decode(&raw).unwrap()).unwrap();
                sent.lock().unwrap().push(raw);
                json!(tx.compute_txid().to_string())
            }
            "getrawtransaction" => {
                json!({"txid": p[0], "blockhash": "00ab", "confirmations": 1, "blocktime": 1_700_000_000})
            }
            "getblockheader" => json!({"hash": "00ab", "height": 201}),
            other => {
                return Json(
                    json!({"id": req["id"], "error": {"code": -32601, "message": format!("no {other}")}}),
                );
            }
        };
        Json(json!({"jsonrpc": "2.0", "id": req["id"], "result": result}))
    }
    let sent: Sent = Default::default();
    let app = axum::Router::new()
        .route("/", axum::routing::post(rpc))
        .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sent)
}

/// `POST /wallets/{id}/transactions` with a PSBT: signed, finalized (witnesses in place) and
/// sent; the bytes the (fake) node received pass Bitcoin Core's script checks on every input,
/// the txid and fee are the transaction's, and the tracker confirms it. A PSBT with a foreign
/// input cannot be completed by the wallet alone: 400, nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psbts_broadcast_through_transactions_are_final_and_valid() {
    use std::str::FromStr;
    let (url, sent) = fake_bitcoin_core().await;
    let h = Harness::start_signing_with(Backend::Sqlite, 0, |cfg| {
        cfg.networks.insert(
            "BitcoinSignet".into(),
            keyfold_server::config::NetworkConfig {
                rpc_url: url.clone(),
                chain_id: None,
            },
        );
        cfg.transfers.tracker_interval_ms = 50;
    })
    .await;
    let c = h.root().await;
    for scheme in ["ECDSA", "Schnorr"] {
        let w = create_wallet(
            &c,
            json!({"network": "BitcoinSignet", "signingKey": {"scheme": scheme, "curve": "secp256k1"}}),
        )
        .await;
        let id = w["id"].as_str().unwrap();
        let script = bitcoin::Address::from_str(w["address"].as_str().unwrap())
            .unwrap()
            .require_network(bitcoin::Network::Signet)
            .unwrap()
            .script_pubkey();

        // A foreign input: refused before anything is signed or sent.
        let (mixed, _) = psbt_spending(&script);
        let before = sent.lock().unwrap().len();
        let err = c
            .signed::<Value, Value>(
                HttpMethod::Post,
                &format!("/wallets/{id}/transactions"),
                Some(&json!({"kind": "Psbt", "psbt": hex::encode(mixed.serialize())})),
            )
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        assert_eq!(sent.lock().unwrap().len(), before);

        // Every input the wallet's.
        let (mut psbt, mut spent) = psbt_spending(&script);
        spent[1].script_pubkey = script.clone();
        psbt.inputs[1].witness_utxo = Some(spent[1].clone());
        let res: Value = c
            .signed(
                HttpMethod::Post,
                &format!("/wallets/{id}/transactions"),
                Some(&json!({"kind": "Psbt", "psbt": hex::encode(psbt.serialize()), "externalId": format!("psbt-{scheme}")})),
            )
            .await
            .unwrap();
        assert_eq!(res["status"], "Broadcasted", "{res}");
        assert!(res["id"].as_str().unwrap().starts_with("tx-"), "{res}");
        let raw = sent.lock().unwrap().last().cloned().unwrap();
        let tx: bitcoin::Transaction =
            bitcoin::consensus::encode::deserialize(&hex::decode(&raw).unwrap()).unwrap();
        assert_eq!(res["txHash"], tx.compute_txid().to_string());
        assert_eq!(res["fee"], "1000", "inputs 100 000 sat, output 99 000");
        assert_eq!(tx.input.len(), 3);
        for i in 0..3 {
            consensus_verify(&tx, &spent, i, scheme == "Schnorr")
                .unwrap_or_else(|e| panic!("{scheme} input {i}: {e:?}"));
        }
        let mut tampered = tx.clone();
        tampered.output[0].value = bitcoin::Amount::from_sat(99_001);
        assert!(consensus_verify(&tampered, &spent, 0, scheme == "Schnorr").is_err());

        // A retry with the same externalId is the same transaction, not a second send.
        let n = sent.lock().unwrap().len();
        let again: Value = c
            .signed(
                HttpMethod::Post,
                &format!("/wallets/{id}/transactions"),
                Some(&json!({"kind": "Psbt", "psbt": hex::encode(psbt.serialize()), "externalId": format!("psbt-{scheme}")})),
            )
            .await
            .unwrap();
        assert_eq!(again["id"], res["id"]);
        assert_eq!(sent.lock().unwrap().len(), n);

        // The tracker asks the node and settles it.
        let tx_id = res["id"].as_str().unwrap();
        let mut got = Value::Null;
        for _ in 0..200 {
            got = c
                .get(&format!("/wallets/{id}/transactions/{tx_id}"))
                .await
                .unwrap();
            if got["status"] == "Confirmed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(got["status"], "Confirmed", "{got}");
        assert_eq!(got["fee"], "1000");
    }
}

// ---------------------------------------------------------------------------------------------
// Native Bitcoin transfers (`POST /wallets/{id}/transfers`, kind `Native`) against a second,
// programmable **fake** Bitcoin Core.

/// One output in the fake node's UTXO set.
#[derive(Clone, Debug)]
struct FakeUtxo {
    outpoint: bitcoin::OutPoint,
    out: bitcoin::TxOut,
    height: u64,
    coinbase: bool,
}

/// What the fake node knows and answers with. Fee rates are kept in sat per 1000 vbytes and
/// answered in BTC/kvB, as Bitcoin Core does.
#[derive(Default)]
struct FakeCoreState {
    tip: u64,
    funded: u32,
    /// The confirmed UTXO set: what `scantxoutset` scans (it never sees the mempool).
    utxos: Vec<FakeUtxo>,
    /// `estimatesmartfee` target → sat/kvB; a target without an entry has no estimate.
    fee_rates: std::collections::HashMap<u64, u64>,
    mempool_min_fee: u64,
    min_relay_fee: u64,
    /// When set, `sendrawtransaction` answers with this error object.
    refuse_with: Option<Value>,
    mempool: Vec<bitcoin::Transaction>,
    /// txid → the height of the block that holds it.
    blocks: std::collections::HashMap<bitcoin::Txid, u64>,
    /// Every transaction `sendrawtransaction` accepted, in order.
    accepted: Vec<bitcoin::Transaction>,
    /// Every call: method and params.
    calls: Vec<(String, Value)>,
    /// Without `-txindex` (Bitcoin Core's default), `getrawtransaction` finds mempool
    /// transactions only.
    no_txindex: bool,
}

/// Bitcoin Core's dust threshold at the default dust relay fee (3 sat/vB), computed the way
/// `GetDustThreshold` does it (not with the `bitcoin` crate Keyfold itself uses).
fn core_dust_threshold(script: &bitcoin::Script) -> u64 {
    let output = 8 + 1 + script.len() as u64;
    let spend = if script.is_witness_program() {
        32 + 4 + 1 + 107 / 4 + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    (output + spend) * 3
}

fn fake_block_hash(height: u64) -> String {
    format!("{height:064x}")
}

fn btc_of(sats: u64) -> Value {
    json!(sats as f64 / 100_000_000.0)
}

type RpcResult = Result<Value, (i64, String)>;

impl FakeCoreState {
    fn answer(&mut self, method: &str, p: &Value) -> RpcResult {
        self.calls.push((method.to_string(), p.clone()));
        match method {
            "scantxoutset" => self.scan(p),
            "estimatesmartfee" => {
                let target = p[0]
                    .as_u64()
                    .ok_or((-8, "Invalid conf_target".to_string()))?;
                Ok(match self.fee_rates.get(&target) {
                    Some(rate) => json!({"feerate": btc_of(*rate), "blocks": target}),
                    None => {
                        json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0})
                    }
                })
            }
            "getmempoolinfo" => Ok(json!({
                "loaded": true,
                "size": self.mempool.len(),
                "mempoolminfee": btc_of(self.mempool_min_fee),
                "minrelaytxfee": btc_of(self.min_relay_fee),
            })),
            "sendrawtransaction" => self.send(p[0].as_str().unwrap_or_default()),
            "getrawtransaction" => {
                let unknown = || {
                    (
                        -5,
                        "No such mempool or blockchain transaction. Use gettransaction for \
                         wallet transactions."
                            .to_string(),
                    )
                };
                let txid: bitcoin::Txid = p[0]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(unknown)?;
                let tx = self
                    .accepted
                    .iter()
                    .find(|t| t.compute_txid() == txid)
                    .ok_or_else(unknown)?;
                let mut v = json!({
                    "txid": txid.to_string(),
                    "hex": bitcoin::consensus::encode::serialize_hex(tx),
                    "vsize": tx.vsize(),
                });
                if self.blocks.contains_key(&txid) && self.no_txindex {
                    return Err((
                        -5,
                        "No such mempool transaction. Use -txindex or provide a block hash to \
                         enable blockchain transaction queries. Use gettransaction for wallet \
                         transactions."
                            .to_string(),
                    ));
                }
                if let Some(h) = self.blocks.get(&txid) {
                    v["blockhash"] = json!(fake_block_hash(*h));
                    v["confirmations"] = json!(self.tip - h + 1);
                    v["blocktime"] = json!(1_700_000_000 + h * 600);
                } else if !self.mempool.iter().any(|t| t.compute_txid() == txid) {
                    return Err(unknown());
                }
                Ok(v)
            }
            "getblockheader" => {
                let height = p[0]
                    .as_str()
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .filter(|h| *h <= self.tip)
                    .ok_or((-5, "Block not found".to_string()))?;
                Ok(json!({"hash": fake_block_hash(height), "height": height,
                          "time": 1_700_000_000 + height * 600,
                          "confirmations": self.tip - height + 1}))
            }
            "getblockhash" => {
                let height = p[0]
                    .as_u64()
                    .filter(|h| *h <= self.tip)
                    .ok_or((-8, "Block height out of range".to_string()))?;
                Ok(json!(fake_block_hash(height)))
            }
            // An output in the UTXO set (the mempool's are left out: Keyfold asks with
            // include_mempool = false), or null.
            "gettxout" => {
                let txid: Option<bitcoin::Txid> = p[0].as_str().and_then(|s| s.parse().ok());
                let vout = p[1].as_u64();
                let found = self.utxos.iter().find(|u| {
                    Some(u.outpoint.txid) == txid && Some(u64::from(u.outpoint.vout)) == vout
                });
                Ok(match found {
                    None => Value::Null,
                    Some(u) => json!({
                        "bestblock": fake_block_hash(self.tip),
                        "confirmations": self.tip - u.height + 1,
                        "value": btc_of(u.out.value.to_sat()),
                        "scriptPubKey": {"hex": u.out.script_pubkey.to_hex_string()},
                        "coinbase": u.coinbase,
                    }),
                })
            }
            _ => Err((-32601, "Method not found".to_string())),
        }
    }

    fn scan(&mut self, p: &Value) -> RpcResult {
        use std::str::FromStr;
        if p[0] != "start" {
            return Err((-8, format!("unexpected action {}", p[0])));
        }
        let mut unspents = vec![];
        let mut total = 0u64;
        for d in p[1].as_array().into_iter().flatten() {
            let desc = d.as_str().unwrap_or_default();
            let addr = desc
                .strip_prefix("addr(")
                .and_then(|s| s.strip_suffix(')'))
                .ok_or((-5, format!("'{desc}' is not a valid descriptor")))?;
            let script = bitcoin::Address::from_str(addr)
                .ok()
                .and_then(|a| a.require_network(bitcoin::Network::Signet).ok())
                .ok_or((-5, format!("Invalid address {addr}")))?
                .script_pubkey();
            for u in self.utxos.iter().filter(|u| u.out.script_pubkey == script) {
                total += u.out.value.to_sat();
                unspents.push(json!({
                    "txid": u.outpoint.txid.to_string(),
                    "vout": u.outpoint.vout,
                    "scriptPubKey": script.to_hex_string(),
                    "desc": desc,
                    "amount": btc_of(u.out.value.to_sat()),
                    "coinbase": u.coinbase,
                    "height": u.height,
                    "blockhash": fake_block_hash(u.height),
                }));
            }
        }
        Ok(json!({
            "success": true,
            "txouts": self.utxos.len(),
            "height": self.tip,
            "bestblock": fake_block_hash(self.tip),
            "unspents": unspents,
            "total_amount": btc_of(total),
        }))
    }

    /// `sendrawtransaction` with the mempool checks of Bitcoin Core that matter here: inputs
    /// unspent and not already spent in the mempool, coinbase maturity, every input script
    /// run by Bitcoin Core's interpreter, fee at least the relay minimum and at most
    /// `maxfeerate` (0.10 BTC/kvB), no dust outputs.
    fn send(&mut self, raw: &str) -> RpcResult {
        let reject = |code: i64, m: &str| Err((code, m.to_string()));
        let Some(tx) = hex::decode(raw)
            .ok()
            .and_then(|b| bitcoin::consensus::encode::deserialize::<bitcoin::Transaction>(&b).ok())
        else {
            return reject(-22, "TX decode failed");
        };
        let txid = tx.compute_txid();
        // Mined already: Bitcoin Core 28+ words it so while any of its outputs is unspent
        // (and finds its inputs spent otherwise).
        if self.blocks.contains_key(&txid) {
            return if self.utxos.iter().any(|u| u.outpoint.txid == txid) {
                reject(-27, "Transaction outputs already in utxo set")
            } else {
                reject(-25, "bad-txns-inputs-missingorspent")
            };
        }
        if self.mempool.iter().any(|t| t.compute_txid() == txid) {
            return Ok(json!(txid.to_string()));
        }
        if let Some(e) = &self.refuse_with {
            let code = e["code"].as_i64().unwrap_or(-26);
            return reject(code, e["message"].as_str().unwrap_or("refused"));
        }
        let mut spent = vec![];
        for (i, input) in tx.input.iter().enumerate() {
            if tx.input[..i]
                .iter()
                .any(|j| j.previous_output == input.previous_output)
            {
                return reject(-26, "bad-txns-inputs-duplicate");
            }
            let Some(u) = self
                .utxos
                .iter()
                .find(|u| u.outpoint == input.previous_output)
            else {
                return reject(-25, "bad-txns-inputs-missingorspent");
            };
            if self.mempool.iter().any(|t| {
                t.input
                    .iter()
                    .any(|j| j.previous_output == input.previous_output)
            }) {
                return reject(-26, "txn-mempool-conflict");
            }
            if u.coinbase && self.tip + 1 - u.height < 100 {
                return reject(-26, "bad-txns-premature-spend-of-coinbase");
            }
            spent.push(u.out.clone());
        }
        let taproot = spent.iter().any(|o| o.script_pubkey.is_p2tr());
        for i in 0..tx.input.len() {
            if let Err(e) = consensus_verify(&tx, &spent, i, taproot) {
                return reject(
                    -26,
                    &format!("mandatory-script-verify-flag-failed (input {i}: {e:?})"),
                );
            }
        }
        let inputs: u64 = spent.iter().map(|o| o.value.to_sat()).sum();
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let Some(fee) = inputs.checked_sub(outputs) else {
            return reject(-26, "bad-txns-in-belowout");
        };
        let vsize = tx.vsize() as u64;
        let floor = self.min_relay_fee.max(self.mempool_min_fee);
        if fee * 1000 < floor * vsize {
            return reject(
                -26,
                &format!("min relay fee not met, {fee} < {}", floor * vsize / 1000),
            );
        }
        if fee * 1000 > 10_000_000 * vsize {
            return reject(
                -25,
                "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
            );
        }
        if tx
            .output
            .iter()
            .any(|o| o.value.to_sat() < core_dust_threshold(&o.script_pubkey))
        {
            return reject(-26, "dust");
        }
        self.mempool.push(tx.clone());
        self.accepted.push(tx);
        Ok(json!(txid.to_string()))
    }
}

/// A **fake** Bitcoin Core (no node can run here) whose chain the test programs: coins per
/// address, fee estimates, the mempool floor, refusals; it keeps every transaction
/// `sendrawtransaction` accepted and confirms them when the test mines a block.
#[derive(Clone)]
struct FakeBitcoinCore {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<FakeCoreState>>,
    scanning: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeBitcoinCore {
    async fn start() -> Self {
        use axum::Json;
        use axum::extract::State;
        use std::sync::atomic::Ordering;
        async fn rpc(State(core): State<FakeBitcoinCore>, Json(req): Json<Value>) -> Json<Value> {
            let method = req["method"].as_str().unwrap_or_default().to_string();
            let answer = if method == "scantxoutset" {
                // A scan takes a while on a real node, and one runs at a time.
                if core.scanning.swap(true, Ordering::SeqCst) {
                    Err((
                        -8,
                        "Scan already in progress, use action \"abort\" or \"status\"".to_string(),
                    ))
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    let a = core.state.lock().unwrap().answer(&method, &req["params"]);
                    core.scanning.store(false, Ordering::SeqCst);
                    a
                }
            } else {
                core.state.lock().unwrap().answer(&method, &req["params"])
            };
            // Bitcoin Core 28+ answers JSON-RPC 2.0 requests with HTTP 200, errors included.
            Json(match answer {
                Ok(result) => json!({"jsonrpc": "2.0", "id": req["id"], "result": result}),
                Err((code, message)) => {
                    json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": code, "message": message}})
                }
            })
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let core = FakeBitcoinCore {
            url: format!("http://{}/", listener.local_addr().unwrap()),
            state: Default::default(),
            scanning: Default::default(),
        };
        {
            let mut s = core.state.lock().unwrap();
            s.tip = 300;
            s.mempool_min_fee = 1_000;
            s.min_relay_fee = 1_000;
        }
        let app = axum::Router::new()
            .route("/", axum::routing::post(rpc))
            .with_state(core.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        core
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeCoreState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// A confirmed coin of `sats` locked to `script`, `confirmations` deep.
    fn fund_deep(
        &self,
        script: &bitcoin::ScriptBuf,
        sats: u64,
        confirmations: u64,
        coinbase: bool,
    ) -> bitcoin::OutPoint {
        use bitcoin::hashes::Hash;
        self.with(|s| {
            s.funded += 1;
            let mut id = [0xf0; 32];
            id[..4].copy_from_slice(&s.funded.to_le_bytes());
            let outpoint = bitcoin::OutPoint {
                txid: bitcoin::Txid::from_byte_array(id),
                vout: if coinbase { 0 } else { s.funded % 3 },
            };
            s.utxos.push(FakeUtxo {
                outpoint,
                out: bitcoin::TxOut {
                    value: bitcoin::Amount::from_sat(sats),
                    script_pubkey: script.clone(),
                },
                height: s.tip + 1 - confirmations,
                coinbase,
            });
            outpoint
        })
    }

    fn fund(&self, script: &bitcoin::ScriptBuf, sats: u64) -> bitcoin::OutPoint {
        self.fund_deep(script, sats, 6, false)
    }

    fn set_fee_rate(&self, target: u64, sat_per_kvb: Option<u64>) {
        self.with(|s| match sat_per_kvb {
            Some(r) => s.fee_rates.insert(target, r),
            None => s.fee_rates.remove(&target),
        });
    }

    fn refuse_broadcasts(&self, error: Option<Value>) {
        self.with(|s| s.refuse_with = error);
    }

    /// Mines one block holding the whole mempool.
    fn mine(&self) {
        self.with(|s| {
            s.tip += 1;
            let tip = s.tip;
            for tx in std::mem::take(&mut s.mempool) {
                let txid = tx.compute_txid();
                s.utxos
                    .retain(|u| !tx.input.iter().any(|i| i.previous_output == u.outpoint));
                for (vout, out) in tx.output.iter().enumerate() {
                    s.utxos.push(FakeUtxo {
                        outpoint: bitcoin::OutPoint {
                            txid,
                            vout: vout as u32,
                        },
                        out: out.clone(),
                        height: tip,
                        coinbase: false,
                    });
                }
                s.blocks.insert(txid, tip);
            }
        });
    }

    /// The confirmed coins of `script`.
    fn coins_of(&self, script: &bitcoin::ScriptBuf) -> Vec<FakeUtxo> {
        self.with(|s| {
            s.utxos
                .iter()
                .filter(|u| u.out.script_pubkey == *script)
                .cloned()
                .collect()
        })
    }

    fn accepted(&self) -> Vec<bitcoin::Transaction> {
        self.with(|s| s.accepted.clone())
    }

    fn accepted_tx(&self, txid: &str) -> bitcoin::Transaction {
        self.accepted()
            .into_iter()
            .find(|t| t.compute_txid().to_string() == txid)
            .unwrap_or_else(|| panic!("the node never accepted {txid}"))
    }

    /// The params of every call of `method`, oldest first.
    fn calls(&self, method: &str) -> Vec<Value> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|(m, _)| m == method)
                .map(|(_, p)| p.clone())
                .collect()
        })
    }

    fn broadcasts(&self) -> usize {
        self.calls("sendrawtransaction").len()
    }
}

/// A signing harness whose BitcoinSignet endpoint is `core`, tracker every 50 ms.
async fn harness_on(core: &FakeBitcoinCore) -> Harness {
    let url = core.url.clone();
    Harness::start_signing_with(Backend::Sqlite, 0, move |cfg| {
        cfg.networks.insert(
            "BitcoinSignet".into(),
            keyfold_server::config::NetworkConfig {
                rpc_url: url,
                chain_id: None,
            },
        );
        cfg.transfers.tracker_interval_ms = 50;
    })
    .await
}

/// A BitcoinSignet wallet of `scheme`: its id and its own output script.
async fn signet_wallet(c: &Client, scheme: &str) -> (String, bitcoin::ScriptBuf) {
    use std::str::FromStr;
    let w = create_wallet(
        c,
        json!({"network": "BitcoinSignet", "signingKey": {"scheme": scheme, "curve": "secp256k1"}}),
    )
    .await;
    let script = bitcoin::Address::from_str(w["address"].as_str().unwrap())
        .unwrap()
        .require_network(bitcoin::Network::Signet)
        .unwrap()
        .script_pubkey();
    assert_eq!(
        script.is_p2tr(),
        scheme == "Schnorr",
        "ECDSA wallets are P2WPKH, Schnorr P2TR: {w}"
    );
    (w["id"].as_str().unwrap().to_string(), script)
}

/// Payees on signet: a P2WPKH and a P2TR output script, and their addresses.
fn signet_payee(taproot: bool) -> (bitcoin::ScriptBuf, String) {
    use bitcoin::hashes::Hash;
    let script = if taproot {
        bitcoin::ScriptBuf::new_witness_program(
            &bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V1, &[0x5a; 32]).unwrap(),
        )
    } else {
        bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0x42; 20]))
    };
    let address = bitcoin::Address::from_script(&script, bitcoin::Network::Signet)
        .unwrap()
        .to_string();
    (script, address)
}

async fn post_transfer(c: &Client, wallet_id: &str, body: &Value) -> Result<Value, Error> {
    c.signed(
        HttpMethod::Post,
        &format!("/wallets/{wallet_id}/transfers"),
        Some(body),
    )
    .await
}

/// Polls the transfer (bounded: 10 s) until it is `want`.
async fn transfer_reaches(c: &Client, wallet_id: &str, transfer_id: &str, want: &str) -> Value {
    let mut got = Value::Null;
    for _ in 0..200 {
        got = c
            .get(&format!("/wallets/{wallet_id}/transfers/{transfer_id}"))
            .await
            .unwrap();
        if got["status"] == want {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("transfer {transfer_id} never reached {want}: {got}");
}

async fn transfer_count(c: &Client, wallet_id: &str) -> usize {
    let list: Value = c
        .get(&format!("/wallets/{wallet_id}/transfers?limit=100"))
        .await
        .unwrap();
    list["items"].as_array().unwrap().len()
}

/// What a transfer was asked to do.
struct Asked<'a> {
    own: &'a bitcoin::ScriptBuf,
    to: &'a bitcoin::ScriptBuf,
    amount: u64,
    sat_per_kvb: u64,
    source: &'a str,
}

/// Checks, to the satoshi, what the node received for the transfer `res` against what was
/// asked and the wallet's coins when it was sent (`coins`): Bitcoin Core's interpreter
/// accepts every input (and refuses a tampered copy), the payee gets exactly `amount`, the
/// change goes back to the wallet, the fee is inputs − outputs, meets the rate on the
/// transaction's real size and is not above it by more than the size prediction's slack
/// (plus, without change, less than a change output's worth). Returns the transaction.
fn check_native_transfer(
    res: &Value,
    core: &FakeBitcoinCore,
    coins: &[FakeUtxo],
    a: &Asked<'_>,
) -> bitcoin::Transaction {
    assert_eq!(res["status"], "Broadcasted", "{res}");
    assert!(res["id"].as_str().unwrap().starts_with("xfr-"), "{res}");
    assert_eq!(res["network"], "BitcoinSignet");
    assert_eq!(res["metadata"]["asset"]["symbol"], "BTC", "{res}");
    assert_eq!(res["metadata"]["asset"]["decimals"], 8, "{res}");
    assert_eq!(res["requestBody"]["amount"], a.amount.to_string(), "{res}");
    let tx = core.accepted_tx(res["txHash"].as_str().unwrap());
    let taproot = a.own.is_p2tr();

    // Structure: version 2, no locktime, every input signals RBF.
    assert_eq!(tx.version, bitcoin::transaction::Version::TWO);
    assert_eq!(tx.lock_time, bitcoin::absolute::LockTime::ZERO);
    assert!(!tx.input.is_empty());
    for i in &tx.input {
        assert_eq!(i.sequence.0, 0xffff_fffd, "{res}");
        assert!(i.script_sig.is_empty(), "native segwit: no scriptSig");
    }

    // Inputs: distinct coins of this wallet that were unspent when it was sent.
    let spent: Vec<bitcoin::TxOut> = tx
        .input
        .iter()
        .map(|i| {
            coins
                .iter()
                .find(|c| c.outpoint == i.previous_output)
                .unwrap_or_else(|| panic!("{} is not a coin of the wallet", i.previous_output))
                .out
                .clone()
        })
        .collect();
    let outpoints: HashSet<_> = tx.input.iter().map(|i| i.previous_output).collect();
    assert_eq!(outpoints.len(), tx.input.len(), "an input spent twice");
    for o in &spent {
        assert_eq!(o.script_pubkey, *a.own);
    }

    // Bitcoin Core's script interpreter, every input; one satoshi more to the payee breaks
    // every signature.
    for i in 0..tx.input.len() {
        consensus_verify(&tx, &spent, i, taproot)
            .unwrap_or_else(|e| panic!("input {i} of {}: {e:?}", res["txHash"]));
    }
    let mut tampered = tx.clone();
    tampered.output[0].value += bitcoin::Amount::from_sat(1);
    for i in 0..tx.input.len() {
        assert!(
            consensus_verify(&tampered, &spent, i, taproot).is_err(),
            "tampered input {i} verified"
        );
    }

    // Outputs: exactly `amount` to the payee, then change (if any) to the wallet itself.
    assert_eq!(tx.output[0].script_pubkey, *a.to);
    assert_eq!(tx.output[0].value.to_sat(), a.amount);
    assert!(tx.output.len() <= 2, "{tx:?}");
    let change = tx.output.get(1).map(|o| {
        assert_eq!(o.script_pubkey, *a.own, "change goes back to the wallet");
        assert!(o.value.to_sat() >= core_dust_threshold(a.own));
        o.value.to_sat()
    });

    // The fee, to the satoshi.
    let inputs: u64 = spent.iter().map(|o| o.value.to_sat()).sum();
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    let fee = inputs - outputs;
    assert_eq!(res["fee"], fee.to_string(), "{res}");
    let d = &res["details"];
    assert_eq!(d["fee"], fee.to_string(), "{res}");
    assert_eq!(d["change"], change.unwrap_or(0).to_string(), "{res}");
    assert_eq!(d["feeRateSource"], a.source, "{res}");
    // sat/vB, as a decimal string.
    let rate: f64 = d["feeRate"].as_str().unwrap().parse().unwrap();
    assert_eq!((rate * 1000.0).round() as u64, a.sat_per_kvb, "{res}");
    let listed: HashSet<String> = d["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let actual: HashSet<String> = outpoints.iter().map(|o| o.to_string()).collect();
    assert_eq!(listed, actual, "{res}");

    // The rate is met on the signed transaction's real size...
    let vsize = tx.vsize() as u64;
    assert!(
        fee * 1000 >= a.sat_per_kvb * vsize,
        "fee {fee} below {} sat/kvB × {vsize} vB",
        a.sat_per_kvb
    );
    // ... and not overshot: the size prediction may exceed the real one by rounding (< 1 vB)
    // and, for P2WPKH, a 71–72-byte signature where 73 are assumed (≤ 0.5 vB per input).
    let slack = 2 + if taproot {
        0
    } else {
        (tx.input.len() as u64).div_ceil(2)
    };
    let predicted = d["vsize"].as_u64().unwrap();
    assert!(
        predicted >= vsize && predicted <= vsize + slack,
        "predicted {predicted} vB, real {vsize}"
    );
    let mut ceiling = (a.sat_per_kvb * (vsize + slack)).div_ceil(1000);
    if change.is_none() {
        // A remainder below a change output's dust limit goes to the fee: at most the change
        // output's own cost plus that limit.
        let change_output = 8 + 1 + a.own.len() as u64;
        ceiling = (a.sat_per_kvb * (vsize + slack + change_output)).div_ceil(1000)
            + core_dust_threshold(a.own);
    }
    assert!(fee <= ceiling, "fee {fee} above {ceiling}: {res}");
    tx
}

fn outpoints_of(tx: &bitcoin::Transaction) -> HashSet<bitcoin::OutPoint> {
    tx.input.iter().map(|i| i.previous_output).collect()
}

/// Native transfers from P2WPKH (ECDSA) and P2TR (Schnorr) wallets: what the node receives
/// passes Bitcoin Core's script interpreter on every input, pays exactly the amount, returns
/// the change, and pays the estimated rate for the priority asked; coinbase coins are spent
/// from 100 confirmations on and not before; coins another transfer holds are left alone; a
/// remainder worth less than a change output goes to the fee; an `externalId` retry is the
/// same transfer and sends nothing; the tracker confirms once the block is mined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_native_transfers_pay_to_the_satoshi_and_pass_bitcoin_core_script_checks() {
    let core = FakeBitcoinCore::start().await;
    let h = harness_on(&core).await;
    let c = h.root().await;
    // Fast (2 blocks) 12.345 sat/vB; Standard (6) and Slow (24) 1 sat/vB.
    core.set_fee_rate(2, Some(12_345));
    core.set_fee_rate(6, Some(1_000));
    core.set_fee_rate(24, Some(1_000));
    let (pay_wpkh, pay_wpkh_addr) = signet_payee(false);
    let (pay_tr, pay_tr_addr) = signet_payee(true);

    for scheme in ["ECDSA", "Schnorr"] {
        let (id, own) = signet_wallet(&c, scheme).await;
        // 0.00050000, 0.00123457, 0.29 BTC (a coinbase one confirmation short of maturity),
        // 0.001 BTC (a coinbase exactly mature), 0.0003; and someone else's coin.
        let a = core.fund(&own, 50_000);
        let b = core.fund(&own, 123_457);
        let immature = core.fund_deep(&own, 29_000_000, 99, true);
        let mature = core.fund_deep(&own, 100_000, 100, true);
        let d = core.fund(&own, 30_000);
        core.fund(&pay_wpkh, 5_000_000);

        // 1. Fast, 150 000 sats: the largest spendable coins are b and the mature coinbase.
        let coins = core.coins_of(&own);
        let body = json!({"kind": "Native", "to": pay_wpkh_addr, "amount": "150000",
                          "priority": "Fast", "externalId": format!("btc-1-{scheme}")});
        let sent_before = core.broadcasts();
        let t1 = post_transfer(&c, &id, &body).await.unwrap();
        assert_eq!(
            core.calls("estimatesmartfee").last().unwrap(),
            &json!([2, "conservative"])
        );
        let tx1 = check_native_transfer(
            &t1,
            &core,
            &coins,
            &Asked {
                own: &own,
                to: &pay_wpkh,
                amount: 150_000,
                sat_per_kvb: 12_345,
                source: "estimatesmartfee",
            },
        );
        assert_eq!(outpoints_of(&tx1), HashSet::from([b, mature]), "{t1}");
        assert_eq!(tx1.output.len(), 2, "change of ~70k sats: {t1}");
        assert_eq!(core.broadcasts(), sent_before + 1);

        // The retry: the same transfer, nothing sent.
        let again = post_transfer(&c, &id, &body).await.unwrap();
        assert_eq!(again["id"], t1["id"]);
        assert_eq!(again["txHash"], t1["txHash"]);
        assert_eq!(core.broadcasts(), sent_before + 1);

        // In the mempool only: still Broadcasted after several tracker passes.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let t1_id = t1["id"].as_str().unwrap();
        let got: Value = c
            .get(&format!("/wallets/{id}/transfers/{t1_id}"))
            .await
            .unwrap();
        assert_eq!(got["status"], "Broadcasted", "{got}");
        core.mine();
        let got = transfer_reaches(&c, &id, t1_id, "Confirmed").await;
        assert_eq!(got["fee"], t1["fee"], "{got}");
        assert!(got["dateConfirmed"].is_string(), "{got}");
        let change1 = bitcoin::OutPoint {
            txid: tx1.compute_txid(),
            vout: 1,
        };

        // 2. Standard (the default), to a P2TR payee: the 0.29 BTC coinbase is mature now
        //    (100 confirmations) and covers it alone; 200 sats are left, less than a change
        //    output is worth at 1 sat/vB, so all 200 are the fee.
        let coins = core.coins_of(&own);
        let t2 = post_transfer(
            &c,
            &id,
            &json!({"kind": "Native", "to": pay_tr_addr, "amount": "28999800"}),
        )
        .await
        .unwrap();
        assert_eq!(
            core.calls("estimatesmartfee").last().unwrap(),
            &json!([6, "conservative"])
        );
        let tx2 = check_native_transfer(
            &t2,
            &core,
            &coins,
            &Asked {
                own: &own,
                to: &pay_tr,
                amount: 28_999_800,
                sat_per_kvb: 1_000,
                source: "estimatesmartfee",
            },
        );
        assert_eq!(outpoints_of(&tx2), HashSet::from([immature]), "{t2}");
        assert_eq!(tx2.output.len(), 1, "{t2}");
        assert_eq!(t2["fee"], "200", "{t2}");

        // 3. Slow, while t2 is unconfirmed (its coin still in the UTXO set, held by t2):
        //    the change of t1 and `a` are the largest coins left.
        let change1_value = tx1.output[1].value.to_sat();
        let amount = change1_value + 50_000 - 3_000;
        let coins = core.coins_of(&own);
        let t3 = post_transfer(
            &c,
            &id,
            &json!({"kind": "Native", "to": pay_wpkh_addr, "amount": amount.to_string(),
                    "priority": "Slow"}),
        )
        .await
        .unwrap();
        assert_eq!(
            core.calls("estimatesmartfee").last().unwrap(),
            &json!([24, "conservative"])
        );
        let tx3 = check_native_transfer(
            &t3,
            &core,
            &coins,
            &Asked {
                own: &own,
                to: &pay_wpkh,
                amount,
                sat_per_kvb: 1_000,
                source: "estimatesmartfee",
            },
        );
        assert_eq!(outpoints_of(&tx3), HashSet::from([change1, a]), "{t3}");
        assert_eq!(tx3.output.len(), 2, "{t3}");

        core.mine();
        for t in [&t2, &t3] {
            let got = transfer_reaches(&c, &id, t["id"].as_str().unwrap(), "Confirmed").await;
            assert_eq!(got["fee"], t["fee"]);
        }
        // d was never needed.
        assert!(core.coins_of(&own).iter().any(|u| u.outpoint == d));
    }
}

/// Transfers in flight hold their coins: three sent at once from a wallet with four coins
/// spend pairwise disjoint coins, a fourth takes the last, and a fifth is a 400 that says
/// coins are held (nothing sent, nothing recorded). A transfer the node refuses ends `Failed`
/// and gives its coins back: the next transfer can spend every coin of the wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_transfers_in_flight_hold_their_coins_and_a_refused_one_releases_them() {
    let core = FakeBitcoinCore::start().await;
    let h = harness_on(&core).await;
    let c = h.root().await;
    core.set_fee_rate(6, Some(5_000));
    core.set_fee_rate(24, Some(1_000));
    let (pay, pay_addr) = signet_payee(false);
    let (id, own) = signet_wallet(&c, "ECDSA").await;
    let funded: HashSet<_> = (0..4).map(|_| core.fund(&own, 100_000)).collect();
    let coins = core.coins_of(&own);
    let asked = |amount| Asked {
        own: &own,
        to: &pay,
        amount,
        sat_per_kvb: 5_000,
        source: "estimatesmartfee",
    };
    let body = |n: usize| {
        json!({"kind": "Native", "to": pay_addr, "amount": "60000",
               "externalId": format!("concurrent-{n}")})
    };

    let results = futures::future::join_all((0..3).map(|n| {
        let (c, id, body) = (&c, &id, body(n));
        async move { post_transfer(c, id, &body).await }
    }))
    .await;
    let mut spent: Vec<HashSet<bitcoin::OutPoint>> = vec![];
    let mut transfers = vec![];
    for r in results {
        let t = r.unwrap();
        let tx = check_native_transfer(&t, &core, &coins, &asked(60_000));
        assert_eq!(tx.input.len(), 1, "one 100k coin pays 60k: {t}");
        spent.push(outpoints_of(&tx));
        transfers.push(t);
    }
    for i in 0..3 {
        for j in i + 1..3 {
            assert!(
                spent[i].is_disjoint(&spent[j]),
                "transfers {i} and {j} spend the same coin: {:?} {:?}",
                spent[i],
                spent[j]
            );
        }
    }
    assert_eq!(core.accepted().len(), 3);

    // The fourth takes the last coin.
    let t4 = post_transfer(&c, &id, &body(3)).await.unwrap();
    let tx4 = check_native_transfer(&t4, &core, &coins, &asked(60_000));
    spent.push(outpoints_of(&tx4));
    let all: HashSet<_> = spent.iter().flatten().copied().collect();
    assert_eq!(
        all, funded,
        "the four transfers spend the four coins, once each"
    );
    transfers.push(t4);

    // A fifth: every coin is held (still in the UTXO set: nothing is mined yet).
    let sent = core.broadcasts();
    let err = post_transfer(&c, &id, &body(4)).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("insufficient funds"), "{msg}");
    assert!(msg.contains("held"), "{msg}");
    assert!(msg.contains("400000"), "the held sats are named: {msg}");
    assert_eq!(core.broadcasts(), sent);
    assert_eq!(transfer_count(&c, &id).await, 4);

    core.mine();
    for t in &transfers {
        transfer_reaches(&c, &id, t["id"].as_str().unwrap(), "Confirmed").await;
    }

    // The wallet holds the four change outputs now. The node refuses the next transfer.
    let changes = core.coins_of(&own);
    assert_eq!(changes.len(), 4);
    core.refuse_broadcasts(Some(json!({"code": -26, "message": "insufficient fee"})));
    let sent = core.broadcasts();
    let refused = post_transfer(
        &c,
        &id,
        &json!({"kind": "Native", "to": pay_addr, "amount": "30000", "externalId": "refused"}),
    )
    .await
    .unwrap();
    assert_eq!(refused["status"], "Failed", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("insufficient fee"),
        "{refused}"
    );
    assert_eq!(core.broadcasts(), sent + 1);
    let refused_inputs: Vec<String> = refused["details"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(!refused_inputs.is_empty(), "{refused}");
    // The tracker leaves a refused transfer alone: still Failed, never sent again.
    core.refuse_broadcasts(None);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let got = transfer_reaches(&c, &id, refused["id"].as_str().unwrap(), "Failed").await;
    assert_eq!(got["reason"], refused["reason"]);
    assert_eq!(core.broadcasts(), sent + 1);
    assert_eq!(core.accepted().len(), 4);

    // Everything the wallet has, less 2000 sats, Slow: only possible if the refused
    // transfer's coin is free again.
    let total: u64 = changes.iter().map(|u| u.out.value.to_sat()).sum();
    let amount = total - 2_000;
    let t7 = post_transfer(
        &c,
        &id,
        &json!({"kind": "Native", "to": pay_addr, "amount": amount.to_string(),
                "priority": "Slow"}),
    )
    .await
    .unwrap();
    let tx7 = check_native_transfer(
        &t7,
        &core,
        &changes,
        &Asked {
            own: &own,
            to: &pay,
            amount,
            sat_per_kvb: 1_000,
            source: "estimatesmartfee",
        },
    );
    let every: HashSet<_> = changes.iter().map(|u| u.outpoint).collect();
    assert_eq!(outpoints_of(&tx7), every);
    for o in &refused_inputs {
        assert!(every.iter().any(|e| e.to_string() == *o), "{o}");
    }
    core.mine();
    transfer_reaches(&c, &id, t7["id"].as_str().unwrap(), "Confirmed").await;

    // Two requests with one externalId at once: one transfer, one broadcast; whatever the
    // second held meanwhile is free again (the next transfer needs the other coin).
    let twins: HashSet<_> = (0..2).map(|_| core.fund(&own, 100_000)).collect();
    let coins = core.coins_of(&own);
    let sent = core.broadcasts();
    let twin = json!({"kind": "Native", "to": pay_addr, "amount": "60000", "externalId": "twin"});
    let (r1, r2) = tokio::join!(post_transfer(&c, &id, &twin), post_transfer(&c, &id, &twin));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1["id"], r2["id"], "{r1} {r2}");
    assert_eq!(core.broadcasts(), sent + 1);
    let tx = check_native_transfer(&r1, &core, &coins, &asked(60_000));
    let next = post_transfer(
        &c,
        &id,
        &json!({"kind": "Native", "to": pay_addr, "amount": "60000"}),
    )
    .await
    .unwrap();
    let next_tx = check_native_transfer(&next, &core, &coins, &asked(60_000));
    let both: HashSet<_> = outpoints_of(&tx)
        .union(&outpoints_of(&next_tx))
        .copied()
        .collect();
    assert_eq!(both, twins);
}

/// Bad requests are a 400 with a message, send nothing and record nothing: a `to` that is
/// not a signet address, an Erc20 kind, amounts that are not positive integers, below the
/// payee's dust limit or more sats than exist, more than the wallet has. Without a fee
/// estimate the node's mempool minimum is used (and said so); exactly the dust limit is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_transfer_bad_requests_are_400_and_without_estimate_the_mempool_minimum_pays() {
    use bitcoin::hashes::Hash;
    let core = FakeBitcoinCore::start().await;
    let h = harness_on(&core).await;
    let c = h.root().await;
    // No estimate for any target; the mempool is busier than the relay minimum.
    core.with(|s| {
        s.mempool_min_fee = 2_000;
        s.min_relay_fee = 1_000;
    });
    let (pay, pay_addr) = signet_payee(false);
    let (_, pay_tr_addr) = signet_payee(true);
    let (id, own) = signet_wallet(&c, "Schnorr").await;
    core.fund(&own, 40_000);
    core.fund(&own, 25_000);
    let coins = core.coins_of(&own);

    let wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([0x42; 20]));
    let mainnet = bitcoin::Address::from_script(&wpkh, bitcoin::Network::Bitcoin)
        .unwrap()
        .to_string();
    let regtest = bitcoin::Address::from_script(&wpkh, bitcoin::Network::Regtest)
        .unwrap()
        .to_string();
    assert!(mainnet.starts_with("bc1q") && regtest.starts_with("bcrt1q"));
    let p2pkh = bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([0x42; 20]));
    assert_eq!(core_dust_threshold(&p2pkh), 546);
    let p2pkh_addr = bitcoin::Address::from_script(&p2pkh, bitcoin::Network::Signet)
        .unwrap()
        .to_string();
    assert_eq!(core_dust_threshold(&wpkh), 294);
    let native = |to: &str, amount: &str| json!({"kind": "Native", "to": to, "amount": amount});
    let mut bad = vec![
        native(&mainnet, "10000"),
        native(&regtest, "10000"),
        native("nope", "10000"),
        native("", "10000"),
        native("0x52908400098527886E0F7030069857D2E4169EE7", "10000"),
        json!({"kind": "Erc20", "contract": "0x52908400098527886E0F7030069857D2E4169EE7",
               "to": pay_addr, "amount": "10000"}),
        native(&pay_addr, "100"),
        native(&pay_addr, "293"),
        native(&pay_tr_addr, "329"),
        native(&pay_addr, "2100000000000001"),
        native(&pay_addr, "99999999999999999999999"),
        // More than the wallet's 65 000 sats (with the fee).
        native(&pay_addr, "65000"),
        native(&pay_addr, "64990"),
        // A P2PKH payee's dust limit is 546 sats.
        native(&p2pkh_addr, "545"),
        json!({"kind": "Native", "to": pay_addr, "amount": "10000", "priority": "Turbo"}),
        json!({"kind": "Native", "amount": "10000"}),
    ];
    for amount in [
        "0", "000", "", "-1", "1.5", "abc", "1e5", " 10000", "0x2710",
    ] {
        bad.push(native(&pay_addr, amount));
    }
    for body in bad {
        let err = post_transfer(&c, &id, &body).await.unwrap_err();
        assert_eq!(err.status(), Some(400), "{body}: {err}");
        let Error::Api { message, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            !message.is_empty() && !message.starts_with('{'),
            "{body}: a message, from {{\"error\":{{\"message\"}}}}: {message}"
        );
        if body["amount"] == "65000" || body["amount"] == "64990" {
            assert!(message.contains("insufficient funds"), "{message}");
            assert!(!message.contains("held"), "no coin is held: {message}");
        }
        if body["amount"] == "293" || body["amount"] == "329" {
            assert!(message.contains("dust"), "{message}");
        }
    }
    assert_eq!(core.broadcasts(), 0, "nothing was sent");
    assert_eq!(transfer_count(&c, &id).await, 0, "nothing was recorded");

    // Exactly the P2WPKH dust limit, at the mempool minimum (no estimate).
    let estimates = core.calls("estimatesmartfee").len();
    let t = post_transfer(&c, &id, &native(&pay_addr, "294"))
        .await
        .unwrap();
    assert_eq!(
        core.calls("estimatesmartfee")[estimates..],
        [json!([6, "conservative"])]
    );
    assert!(!core.calls("getmempoolinfo").is_empty());
    let tx = check_native_transfer(
        &t,
        &core,
        &coins,
        &Asked {
            own: &own,
            to: &pay,
            amount: 294,
            sat_per_kvb: 2_000,
            source: "mempoolminfee",
        },
    );
    assert_eq!(tx.input.len(), 1, "the 40 000-sat coin alone: {t}");
    assert_eq!(tx.output.len(), 2, "{t}");
    core.mine();
    transfer_reaches(&c, &id, t["id"].as_str().unwrap(), "Confirmed").await;

    // 70 more coins of 1000 sats: 125 000 sats are there, but not within 64 inputs.
    for _ in 0..70 {
        core.fund(&own, 1_000);
    }
    let have: u64 = core
        .coins_of(&own)
        .iter()
        .map(|u| u.out.value.to_sat())
        .sum();
    assert!(have > 125_000, "{have}");
    let err = post_transfer(&c, &id, &native(&pay_addr, "125000"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("64"), "{err}");
    assert_eq!(core.broadcasts(), 1);
    assert_eq!(transfer_count(&c, &id).await, 1);
}

/// On a node without `-txindex` (Bitcoin Core's default) `getrawtransaction` no longer finds a
/// transaction once it is mined. A transfer in a block must still end `Confirmed` — not
/// `Failed` as "dropped" once `dropped_after` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mined_bitcoin_transfer_is_confirmed_on_a_node_without_txindex() {
    let core = FakeBitcoinCore::start().await;
    core.with(|s| s.no_txindex = true);
    core.set_fee_rate(6, Some(1_000));
    let h = harness_on(&core).await;
    let c = h.root().await;
    let (pay, pay_addr) = signet_payee(false);
    let (id, own) = signet_wallet(&c, "Schnorr").await;
    core.fund(&own, 50_000);
    let coins = core.coins_of(&own);
    let t = post_transfer(
        &c,
        &id,
        &json!({"kind": "Native", "to": pay_addr, "amount": "20000"}),
    )
    .await
    .unwrap();
    check_native_transfer(
        &t,
        &core,
        &coins,
        &Asked {
            own: &own,
            to: &pay,
            amount: 20_000,
            sat_per_kvb: 1_000,
            source: "estimatesmartfee",
        },
    );
    core.mine();
    // Past `dropped_after` (120 s by default) on the server's clock.
    h.clock.advance_secs(180);
    let t_id = t["id"].as_str().unwrap();
    let mut got = Value::Null;
    for _ in 0..100 {
        got = c
            .get(&format!("/wallets/{id}/transfers/{t_id}"))
            .await
            .unwrap();
        if got["status"] != "Broadcasted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(
        got["status"], "Failed",
        "a transfer in block 301 is not failed: {got}"
    );
    assert_eq!(got["status"], "Confirmed", "{got}");
}

/// Waits (at most `within`) until `key_id` has at least `n` pooled records (presignatures or
/// FROST nonces).
async fn pool_reaches(h: &Harness, key_id: &str, n: i64, within: std::time::Duration) -> i64 {
    let mut pooled = 0;
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        pooled = h.store.count_presignatures(key_id).await.unwrap();
        if pooled >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(pooled >= n, "the pool of {key_id} never reached {n}");
    pooled
}

/// Nonce pairs are cheap: a batch is milliseconds of work.
const NONCE_POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frost_nonces_made_ahead_sign_in_one_exchange_and_are_never_used_twice() {
    use k256::schnorr::signature::hazmat::PrehashVerifier as _;
    use keyfold_domain::ports::NodeStore as _;
    use std::str::FromStr;
    let h = Harness::start_signing(Backend::Sqlite, 8).await;
    let c = h.root().await;
    let ed = create_key(&c, "EdDSA", "ed25519").await;
    let (ed_id, ed_pk) = (
        ed["id"].as_str().unwrap().to_string(),
        ed["publicKey"].as_str().unwrap().to_string(),
    );
    // No pool before a key has signed: keys that never sign cost the signers nothing.
    assert_eq!(h.store.count_presignatures(&ed_id).await.unwrap(), 0);
    let first = sign(&c, &ed_id, json!({"kind": "Message", "message": "0001"}))
        .await
        .unwrap();
    verify_ed25519(&ed_pk, &[0, 1], &first);
    // The first signature ran the two rounds and asked for a pool: 8 nonce pairs per signer
    // of one quorum, in one batch.
    assert_eq!(pool_reaches(&h, &ed_id, 8, NONCE_POOL_WAIT).await, 8);
    let requests_before: i64 = {
        let mut n = 0;
        for db in &h.signer_dbs {
            n += db.store.count_requests(&ed_id).await.unwrap();
        }
        n
    };
    // Three signatures in a row spend three pooled nonce sets (no refill above half).
    let mut rs = HashSet::new();
    for i in 0..3u8 {
        let msg = [i; 5];
        let res = sign(
            &c,
            &ed_id,
            json!({"kind": "Message", "message": hex::encode(msg)}),
        )
        .await
        .unwrap();
        verify_ed25519(&ed_pk, &msg, &res);
        let sig = res["signature"]["encoded"].as_str().unwrap().to_string();
        assert!(
            rs.insert(sig[..64].to_string()),
            "R repeated: a nonce was reused"
        );
    }
    assert_eq!(h.store.count_presignatures(&ed_id).await.unwrap(), 5);
    // Each spent nonce was recorded, with its user action, by exactly the two signers used.
    let mut requests_after = 0;
    for db in &h.signer_dbs {
        requests_after += db.store.count_requests(&ed_id).await.unwrap();
    }
    assert_eq!(requests_after - requests_before, 6);

    // Concurrent signatures drain the pool below half: it is refilled, every signature
    // verifies and no R repeats.
    let futs = (0..8u8).map(|i| {
        let c = &c;
        let id = ed_id.clone();
        async move {
            let msg = [100 + i; 3];
            let res = sign(
                c,
                &id,
                json!({"kind": "Message", "message": hex::encode(msg)}),
            )
            .await
            .unwrap();
            (msg, res)
        }
    });
    for (msg, res) in futures::future::join_all(futs).await {
        verify_ed25519(&ed_pk, &msg, &res);
        let sig = res["signature"]["encoded"].as_str().unwrap().to_string();
        assert!(
            rs.insert(sig[..64].to_string()),
            "R repeated: a nonce was reused"
        );
    }
    pool_reaches(&h, &ed_id, 4, NONCE_POOL_WAIT).await;

    // A node spends a nonce set once: replaying the exact request the coordinator sent is
    // refused, and so is a package with this signer's commitment changed (and that attempt
    // burns the nonces: they are deleted before anything is computed from them).
    let healthy = vec!["0,1".to_string(), "0,2".to_string(), "1,2".to_string()];
    let rec = h
        .store
        .take_presignature(&ed_id, &healthy)
        .await
        .unwrap()
        .unwrap();
    let public: Value = serde_json::from_slice(&rec.public).unwrap();
    let commitments: std::collections::BTreeMap<u16, String> =
        serde_json::from_value(public["commitments"].clone()).unwrap();
    let party = *commitments.keys().next().unwrap();
    let node = h.signers[usize::from(party)].node().clone();
    let req = keyfold_signer::protocol::FrostShareRequest {
        key_id: ed_id.clone(),
        nonce_id: rec.id.clone(),
        commitments: commitments.clone(),
        input: SignInput::Message {
            message: "ab".into(),
            taproot: false,
            merkle_root: None,
        },
        evidence: None,
    };
    node.frost_share(req.clone()).await.unwrap();
    let again = node.frost_share(req.clone()).await.unwrap_err();
    assert!(again.to_string().contains("already used"), "{again}");
    let rec = h
        .store
        .take_presignature(&ed_id, &healthy)
        .await
        .unwrap()
        .unwrap();
    let public: Value = serde_json::from_slice(&rec.public).unwrap();
    let mut lying: std::collections::BTreeMap<u16, String> =
        serde_json::from_value(public["commitments"].clone()).unwrap();
    let other = lying.values().last().unwrap().clone();
    let party = *lying.keys().next().unwrap();
    lying.insert(party, other);
    let node = h.signers[usize::from(party)].node().clone();
    let bad = keyfold_signer::protocol::FrostShareRequest {
        nonce_id: rec.id.clone(),
        commitments: lying,
        ..req.clone()
    };
    let err = node.frost_share(bad.clone()).await.unwrap_err();
    assert!(matches!(err, NodeError::BadRequest { .. }), "{err:?}");
    let err = node.frost_share(bad).await.unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    // A malformed request is refused before anything is spent: the same nonces then sign.
    let rec = h
        .store
        .take_presignature(&ed_id, &healthy)
        .await
        .unwrap()
        .unwrap();
    let public: Value = serde_json::from_slice(&rec.public).unwrap();
    let good: std::collections::BTreeMap<u16, String> =
        serde_json::from_value(public["commitments"].clone()).unwrap();
    let party = *good.keys().next().unwrap();
    let node = h.signers[usize::from(party)].node().clone();
    let mut without_me = good.clone();
    without_me.remove(&party);
    let mut garbled = good.clone();
    garbled.insert(party, "AAAA".into());
    for commitments in [without_me, garbled] {
        let err = node
            .frost_share(keyfold_signer::protocol::FrostShareRequest {
                nonce_id: rec.id.clone(),
                commitments,
                ..req.clone()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::BadRequest { .. } | NodeError::Misbehaving { .. }
            ),
            "{err:?}"
        );
    }
    node.frost_share(keyfold_signer::protocol::FrostShareRequest {
        nonce_id: rec.id.clone(),
        commitments: good,
        ..req.clone()
    })
    .await
    .unwrap();
    // Asking a node for nonces under ids it already holds, or twice in one batch: 400.
    let ids = vec!["ps-dup".to_string(), "ps-dup".to_string()];
    let err = node
        .make_nonces(keyfold_signer::protocol::NoncesRequest {
            key_id: ed_id.clone(),
            ids,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::BadRequest { .. }), "{err:?}");
    let ids = vec!["ps-once".to_string()];
    let nreq = keyfold_signer::protocol::NoncesRequest {
        key_id: ed_id.clone(),
        ids,
    };
    node.make_nonces(nreq.clone()).await.unwrap();
    let err = node.make_nonces(nreq).await.unwrap_err();
    assert!(matches!(err, NodeError::BadRequest { .. }), "{err:?}");

    // Taproot key-path signatures (the BIP-341 tweak) from the pool, checked against the
    // address's output key; then one signer of the pooled quorum goes down and signing
    // still succeeds (the pooled attempt fails, the two-round protocol picks another quorum).
    let w = create_wallet(
        &c,
        json!({"network": "BitcoinSignet", "signingKey": {"scheme": "Schnorr"}}),
    )
    .await;
    let address = w["address"].as_str().unwrap();
    let parsed = bitcoin::Address::from_str(address)
        .unwrap()
        .require_network(bitcoin::Network::Signet)
        .unwrap();
    let output_key = k256::schnorr::VerifyingKey::from_bytes(
        parsed.witness_program().unwrap().program().as_bytes(),
    )
    .unwrap();
    let wid = w["id"].as_str().unwrap().to_string();
    let key_id = w["signingKey"]["id"].as_str().unwrap().to_string();
    let sign_tr = |tag: &'static str| {
        let c = &c;
        let wid = wid.clone();
        async move {
            let d = digest_of(tag);
            let res = sign_wallet(
                c,
                &wid,
                json!({"kind": "Hash", "hash": hex::encode(d), "taprootMerkleRoot": ""}),
            )
            .await
            .unwrap();
            let sig = k256::schnorr::Signature::try_from(
                unhex(res["signature"]["encoded"].as_str().unwrap()).as_slice(),
            )
            .unwrap();
            output_key
                .verify_prehash(&d, &sig)
                .expect("BIP-340 signature under the address's output key");
        }
    };
    sign_tr("taproot first").await;
    pool_reaches(&h, &key_id, 8, NONCE_POOL_WAIT).await;
    sign_tr("taproot pooled").await;
    assert_eq!(h.store.count_presignatures(&key_id).await.unwrap(), 7);
    h.signers[0].set_down(true);
    sign_tr("taproot with signer 0 down").await;
    h.signers[0].set_down(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_generated_ahead_of_time_are_handed_out_once_and_sign() {
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    let cluster = h.cluster.as_ref().unwrap().clone();
    // Two per scheme (the fixture cluster's ECDSA setup is done, so ECDSA too).
    assert_eq!(cluster.fill_key_pool(2).await, 6);
    assert_eq!(
        cluster.fill_key_pool(2).await,
        0,
        "a full pool makes nothing"
    );
    use keyfold_types::keys::KeyScheme;
    assert_eq!(
        h.store.count_pooled_keys(KeyScheme::EdDsa).await.unwrap(),
        2
    );

    // A key from the pool: Active at once, and it signs (checked with ed25519-dalek).
    let ed = create_key(&c, "EdDSA", "ed25519").await;
    assert_eq!(
        h.store.count_pooled_keys(KeyScheme::EdDsa).await.unwrap(),
        1
    );
    let res = sign(
        &c,
        ed["id"].as_str().unwrap(),
        json!({"kind": "Message", "message": "0102"}),
    )
    .await
    .unwrap();
    verify_ed25519(ed["publicKey"].as_str().unwrap(), &[1, 2], &res);

    // A wallet from the pool with one signer down: no key generation is needed, and the
    // other two sign.
    h.signers[2].set_down(true);
    let w = create_wallet(&c, json!({"network": "EthereumSepolia"})).await;
    assert_eq!(w["status"], "Active", "{w}");
    assert_eq!(
        h.store.count_pooled_keys(KeyScheme::Ecdsa).await.unwrap(),
        1
    );
    let pk = w["signingKey"]["publicKey"].as_str().unwrap();
    let d = digest_of("pooled wallet");
    let res = sign_wallet(
        &c,
        w["id"].as_str().unwrap(),
        json!({"kind": "Hash", "hash": hex::encode(d)}),
    )
    .await
    .unwrap();
    verify_ecdsa(pk, &d, &res);
    // The address is the key's, as for any EVM wallet.
    let uncompressed = k256::ecdsa::VerifyingKey::from_sec1_bytes(&unhex(pk))
        .unwrap()
        .to_encoded_point(false);
    let addr = &sha3::Keccak256::digest(&uncompressed.as_bytes()[1..])[12..];
    assert_eq!(
        w["address"].as_str().unwrap().to_lowercase(),
        format!("0x{}", hex::encode(addr))
    );
    // The pool empties; then key generation needs every signer again: 503, nothing half-made.
    create_key(&c, "EdDSA", "ed25519").await;
    let err = c
        .signed::<Value, Value>(
            HttpMethod::Post,
            "/keys",
            Some(&json!({"scheme": "EdDSA", "curve": "ed25519"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    h.signers[2].set_down(false);
    let fresh = create_key(&c, "EdDSA", "ed25519").await;
    assert_eq!(fresh["status"], "Active");
}

/// A signature request spends its user action in the transaction that records it: of
/// requests racing one token, exactly one signs; a refused request spends its action too;
/// an externalId retry answered from the first request still spends the retry's action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_action_approves_exactly_one_signature_request() {
    let h = Harness::start_signing(Backend::Sqlite, 0).await;
    let c = h.root().await;
    let token = c.token().unwrap().to_string();
    let key = create_key(&c, "EdDSA", "ed25519").await;
    let (id, pk) = (
        key["id"].as_str().unwrap().to_string(),
        key["publicKey"].as_str().unwrap().to_string(),
    );
    let path = format!("/keys/{id}/signatures");
    let post = |body: String, ua: String| {
        let req = h
            .http()
            .post(format!("{}{path}", h.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("x-dfns-useraction", ua)
            .body(body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let count = || async {
        let list: Value = c.get(&path).await.unwrap();
        list["items"].as_array().unwrap().len()
    };

    let body = json!({"kind": "Message", "message": "0a0b"}).to_string();
    let ua = c.user_action(HttpMethod::Post, &path, &body).await.unwrap();
    let answers = futures::future::join_all((0..6).map(|_| post(body.clone(), ua.clone()))).await;
    let signed: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(signed.len(), 1, "{answers:?}");
    verify_ed25519(&pk, &[0x0a, 0x0b], signed[0]);
    for (s, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 401, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{v}"
        );
    }
    assert_eq!(count().await, 1);

    // Refused (a hash of the wrong length): 400, nothing recorded, and the action is spent.
    let bad = json!({"kind": "Hash", "hash": "0x1234"}).to_string();
    let ua = c.user_action(HttpMethod::Post, &path, &bad).await.unwrap();
    assert_eq!(post(bad.clone(), ua.clone()).await.0, 400);
    assert_eq!(post(bad, ua).await.0, 401);
    assert_eq!(count().await, 1);

    // An externalId retry returns the first signature and spends its own action.
    let body = json!({"kind": "Message", "message": "0c", "externalId": "once"}).to_string();
    let ua1 = c.user_action(HttpMethod::Post, &path, &body).await.unwrap();
    let (s1, first) = post(body.clone(), ua1).await;
    assert_eq!(s1, 200, "{first}");
    let ua2 = c.user_action(HttpMethod::Post, &path, &body).await.unwrap();
    let (s2, again) = post(body.clone(), ua2.clone()).await;
    assert_eq!((s2, &again["id"]), (200, &first["id"]), "{again}");
    assert_eq!(post(body, ua2).await.0, 401);
    assert_eq!(count().await, 2);
}

/// A backup restored on the signers (and on the API) brings back nonces already spent. Each
/// signer burns its pooled secrets when it starts, so nothing spent before can be used again
/// (checked on each restored database); the coordinator notices the start (its health's
/// `startedAt`) and forgets what it had indexed before; and with a restored index that still
/// offers the spent records, signing keeps working (the signers refuse them, the coordinator
/// falls back to the two rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_restored_from_a_backup_never_reuse_a_spent_nonce() {
    use keyfold_domain::ports::NodeStore as _;
    let h = Harness::start_signing(Backend::Sqlite, 8).await;
    let cluster = h.cluster.clone().unwrap();
    let c = h.root().await;
    let ed = create_key(&c, "EdDSA", "ed25519").await;
    let (ed_id, ed_pk) = (
        ed["id"].as_str().unwrap().to_string(),
        ed["publicKey"].as_str().unwrap().to_string(),
    );
    let first = sign(&c, &ed_id, json!({"kind": "Message", "message": "00"}))
        .await
        .unwrap();
    verify_ed25519(&ed_pk, &[0], &first);
    assert_eq!(pool_reaches(&h, &ed_id, 8, NONCE_POOL_WAIT).await, 8);
    // The index as it is now (taken and put back unchanged), and a backup of every signer.
    let sets: Vec<String> = ["0,1", "0,2", "1,2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let records = h
        .store
        .take_presignatures(&ed_id, &sets, 100)
        .await
        .unwrap();
    assert_eq!(records.len(), 8);
    h.store.add_presignatures(&records).await.unwrap();
    let backup = tempfile::tempdir().unwrap();
    for (i, db) in h.signer_dbs.iter().enumerate() {
        db.snapshot_to(&backup.path().join(format!("{i}.db"))).await;
    }

    // Three signatures spend three of the pooled nonce sets; their R values are what a
    // resurrected nonce would repeat.
    let mut rs = HashSet::new();
    for i in 1..4u8 {
        let res = sign_byte_ed25519(&c, &ed_id, &ed_pk, i).await;
        let sig = res["signature"]["encoded"].as_str().unwrap().to_string();
        assert!(rs.insert(sig[..64].to_string()), "R repeated");
    }
    assert_eq!(h.store.count_presignatures(&ed_id).await.unwrap(), 5);

    // Every signer is restored from the backup and restarted on it.
    let members = cluster.group().members.clone();
    let mut restored = vec![];
    for (i, local) in h.signers.iter().enumerate() {
        let path = backup.path().join(format!("{i}.db"));
        // Without the burn, the restored database would hand a spent nonce out again.
        let peek = keyfold_store::testing::TestNodeDb::sqlite_copy_of(&path).await;
        let mut resurrected = 0;
        for r in &records {
            if peek
                .store
                .take_presignature(&r.id, &ed_id)
                .await
                .unwrap()
                .is_some()
            {
                resurrected += 1;
            }
        }
        let db = keyfold_store::testing::TestNodeDb::sqlite_copy_of(&path).await;
        let node = common::open_node(
            &format!("signer-{i}"),
            &keyfold_keystore::Kek::from_hex(&h.signer_keks[i]).unwrap(),
            std::sync::Arc::new(db.store.clone()),
            members.clone(),
        )
        .await;
        local.replace(std::sync::Arc::new(node));
        // The start burnt them all.
        for r in &records {
            assert_eq!(
                db.store.take_presignature(&r.id, &ed_id).await.unwrap(),
                None
            );
        }
        restored.push((resurrected, db));
    }
    assert_eq!(
        restored.iter().map(|(n, _)| n).sum::<i32>(),
        16,
        "each of the two signers of the pool's quorum had all 8 sets in its backup"
    );

    // The coordinator's next health check sees the signers' new start times and forgets what
    // it indexed before them.
    cluster.prepare_ecdsa().await;
    assert_eq!(h.store.count_presignatures(&ed_id).await.unwrap(), 0);

    // An API database restored from the same moment offers the spent records again: the
    // coordinator drops them (made before their signers started), and the signers would
    // refuse them anyway (they hold none of them: checked above); every signature still
    // verifies, with an R never seen before. All eight stale records are used up on the way.
    h.store.add_presignatures(&records).await.unwrap();
    for i in 10..18u8 {
        let res = sign_byte_ed25519(&c, &ed_id, &ed_pk, i).await;
        let sig = res["signature"]["encoded"].as_str().unwrap().to_string();
        assert!(rs.insert(sig[..64].to_string()), "R repeated");
    }
    let stale: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let left = h
        .store
        .take_presignatures(&ed_id, &sets, 100)
        .await
        .unwrap();
    assert!(
        left.iter().all(|r| !stale.contains(r.id.as_str())),
        "every stale record was offered once and dropped"
    );
}

/// Signs the one-byte message `[byte]` with an Ed25519 key and checks the signature.
async fn sign_byte_ed25519(c: &Client, key_id: &str, public_key: &str, byte: u8) -> Value {
    let res = sign(
        c,
        key_id,
        json!({"kind": "Message", "message": hex::encode([byte])}),
    )
    .await
    .unwrap();
    verify_ed25519(public_key, &[byte], &res);
    res
}
