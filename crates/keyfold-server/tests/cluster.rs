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
    // The background task fills the pool.
    let mut pooled = 0;
    for _ in 0..600 {
        pooled = h.store.count_presignatures(&id).await.unwrap();
        if pooled >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(pooled >= 3, "pool never filled");
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
