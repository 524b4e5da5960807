//! Golden fixtures: bytes written by an earlier version of this crate must keep opening.
//!
//! `tests/fixtures/v1/*.json` were written once by keyfold-keystore 0.1.0 (format v1 of records,
//! envelopes and signed messages) and are **never regenerated**: signer databases and in-flight
//! messages written by deployed versions look exactly like them. A change that breaks this test
//! breaks every deployed signer. When a format gains a version 2, add `fixtures/v2/` beside these
//! and keep this test as it is.
//!
//! To write fixtures for a *new* format version (refuses to overwrite existing files):
//! `cargo test --test golden -- --ignored write_fixtures`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use keyfold_keystore::{
    Aad, Envelope, Kek, MessageContext, NodeIdentity, NodePublic, Purpose, SignedMessage, open,
    seal,
};
use serde_json::{Value, json};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn read(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex_field(value: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        value[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"))
}

#[test]
fn v1_records_still_open() {
    let fixture = read("records.json");
    let kek = Kek::from_hex(str_field(&fixture, "kek_hex")).unwrap();
    assert_eq!(kek.id().to_string(), str_field(&fixture, "kek_id"));
    let records = fixture["records"].as_array().unwrap();
    assert!(records.len() >= 6);
    for record in records {
        let purpose = Purpose::from_code(record["purpose"].as_u64().unwrap() as u8).unwrap();
        let aad = Aad::new(
            purpose,
            str_field(record, "key_id"),
            str_field(record, "signer_id"),
            record["version"].as_u64().unwrap() as u32,
        );
        let sealed = hex_field(record, "sealed_hex");
        let plaintext = open(&kek, &aad, &sealed).unwrap();
        assert_eq!(
            plaintext.expose_secret(),
            hex_field(record, "plaintext_hex")
        );
        // And it is still bound: the next version does not open it.
        let moved = Aad::new(purpose, aad.key_id, aad.signer_id, aad.version + 1);
        assert!(open(&kek, &moved, &sealed).is_err());
    }
}

#[test]
fn v1_identities_and_messages_still_open() {
    let fixture = read("messages.json");
    let kek = Kek::from_hex(str_field(&fixture, "kek_hex")).unwrap();
    let nodes: Vec<(NodeIdentity, NodePublic)> = fixture["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let identity = NodeIdentity::from_sealed(
                &kek,
                str_field(node, "signer_id"),
                &hex_field(node, "sealed_identity_hex"),
            )
            .unwrap();
            let public: NodePublic = serde_json::from_value(node["public"].clone()).unwrap();
            assert_eq!(identity.public(), public);
            (identity, public)
        })
        .collect();

    let p2p = &fixture["envelope"];
    let context = hex_field(p2p, "context_hex");
    let from = &nodes[p2p["from"].as_u64().unwrap() as usize];
    let to = &nodes[p2p["to"].as_u64().unwrap() as usize];
    let bytes = hex_field(p2p, "bytes_hex");
    let envelope = Envelope::from_bytes(&bytes).unwrap();
    assert_eq!(envelope.to_bytes(), bytes, "re-encoding changed the bytes");
    let from_json: Envelope = serde_json::from_value(p2p["json"].clone()).unwrap();
    assert_eq!(from_json, envelope);
    assert_eq!(serde_json::to_value(&envelope).unwrap(), p2p["json"]);
    envelope.verify_sender(&from.1, &context).unwrap();
    let plaintext = to.0.open_from(&from.1, &context, &envelope).unwrap();
    assert_eq!(plaintext.expose_secret(), hex_field(p2p, "plaintext_hex"));

    let broadcast = &fixture["broadcast"];
    let context = hex_field(broadcast, "context_hex");
    let from = &nodes[broadcast["from"].as_u64().unwrap() as usize];
    let bytes = hex_field(broadcast, "bytes_hex");
    let signed = SignedMessage::from_bytes(&bytes).unwrap();
    assert_eq!(signed.to_bytes(), bytes);
    let from_json: SignedMessage = serde_json::from_value(broadcast["json"].clone()).unwrap();
    assert_eq!(from_json, signed);
    assert_eq!(
        signed.verify(&from.1, &context).unwrap(),
        hex_field(broadcast, "payload_hex")
    );
    // Ed25519 is deterministic: today's code signs the same bytes the same way.
    assert_eq!(
        from.0
            .sign_broadcast(&context, &hex_field(broadcast, "payload_hex"))
            .to_bytes(),
        bytes
    );
}

/// Writes the fixtures of the current format version; refuses to overwrite. Run once per new
/// format version, by hand, and commit the files.
#[test]
#[ignore = "writes fixtures; run by hand for a new format version only"]
fn write_fixtures() {
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let records_path = dir.join("records.json");
    let messages_path = dir.join("messages.json");
    assert!(
        !records_path.exists() && !messages_path.exists(),
        "fixtures exist: golden files are never regenerated"
    );

    let kek = Kek::generate();
    let purposes = [
        (
            Purpose::KeyShare,
            "key-01HZX3",
            "signer-1",
            1,
            b"ecdsa key share".to_vec(),
        ),
        (
            Purpose::AuxInfo,
            "key-01HZX3",
            "signer-1",
            1,
            vec![0x5a; 300],
        ),
        (
            Purpose::Presignature,
            "presig-7",
            "signer-1",
            0,
            b"presignature".to_vec(),
        ),
        (
            Purpose::Primes,
            "primes-0",
            "signer-1",
            0,
            (0..=255).collect(),
        ),
        (
            Purpose::NodeIdentity,
            "node-identity",
            "signer-1",
            1,
            vec![7; 65],
        ),
        (
            Purpose::ProtocolState,
            "session-42",
            "signer-1",
            3,
            Vec::new(),
        ),
    ];
    let records: Vec<Value> = purposes
        .iter()
        .map(|(purpose, key_id, signer_id, version, plaintext)| {
            let aad = Aad::new(*purpose, key_id, signer_id, *version);
            json!({
                "purpose": purpose.code(),
                "key_id": key_id,
                "signer_id": signer_id,
                "version": version,
                "plaintext_hex": hex::encode(plaintext),
                "sealed_hex": hex::encode(seal(&kek, &aad, plaintext).unwrap()),
            })
        })
        .collect();
    let records_json = json!({
        "written_by": format!("keyfold-keystore {}", env!("CARGO_PKG_VERSION")),
        "format": "sealed record v1",
        "kek_hex": kek.to_hex().as_str(),
        "kek_id": kek.id().to_string(),
        "records": records,
    });

    let nodes = [NodeIdentity::generate(), NodeIdentity::generate()];
    let signer_ids = ["signer-a", "signer-b"];
    let session = [0x11u8; 32];
    let p2p_context = MessageContext {
        protocol: "cggmp24/sign",
        session_id: &session,
        round: 1,
        sender: 0,
        recipient: Some(1),
    }
    .to_bytes();
    let plaintext = b"round-1 secret for party 1";
    let envelope = nodes[0]
        .seal_to(&nodes[1].public(), &p2p_context, plaintext)
        .unwrap();
    let broadcast_context = MessageContext {
        protocol: "cggmp24/sign",
        session_id: &session,
        round: 1,
        sender: 0,
        recipient: None,
    }
    .to_bytes();
    let payload = b"round-1 commitment";
    let signed = nodes[0].sign_broadcast(&broadcast_context, payload);
    let messages_json = json!({
        "written_by": format!("keyfold-keystore {}", env!("CARGO_PKG_VERSION")),
        "format": "node identity v1, envelope v1, signed message v1",
        "kek_hex": kek.to_hex().as_str(),
        "nodes": nodes.iter().zip(signer_ids).map(|(node, signer_id)| json!({
            "signer_id": signer_id,
            "public": node.public(),
            "sealed_identity_hex": hex::encode(node.to_sealed(&kek, signer_id).unwrap()),
        })).collect::<Vec<_>>(),
        "envelope": {
            "from": 0,
            "to": 1,
            "context_hex": hex::encode(&p2p_context),
            "plaintext_hex": hex::encode(plaintext),
            "bytes_hex": hex::encode(envelope.to_bytes()),
            "json": envelope,
        },
        "broadcast": {
            "from": 0,
            "context_hex": hex::encode(&broadcast_context),
            "payload_hex": hex::encode(payload),
            "bytes_hex": hex::encode(signed.to_bytes()),
            "json": signed,
        },
    });
    std::fs::write(
        &records_path,
        serde_json::to_string_pretty(&records_json).unwrap() + "\n",
    )
    .unwrap();
    std::fs::write(
        &messages_path,
        serde_json::to_string_pretty(&messages_json).unwrap() + "\n",
    )
    .unwrap();
}
