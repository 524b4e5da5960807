//! Loading the key-encryption key, and the redaction of every secret type.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyfold_keystore::{Aad, Error, Kek, NodeIdentity, Purpose, SecretBytes, open, seal};

const HEX: &str = "7f1e9a3c5b2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";

#[test]
fn from_hex_accepts_64_digits_and_trims() {
    let a = Kek::from_hex(HEX).unwrap();
    let b = Kek::from_hex(&format!("  {}\n", HEX.to_uppercase())).unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.to_hex().as_str(), HEX);
    // The same key seals and opens across instances.
    let aad = Aad::new(Purpose::KeyShare, "k", "s", 1);
    let sealed = seal(&a, &aad, b"x").unwrap();
    assert_eq!(open(&b, &aad, &sealed).unwrap().expose_secret(), b"x");
}

#[test]
fn from_hex_rejects_bad_input_without_echoing_it() {
    let secretish = "zz1e9a3c5b2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
    for bad in [
        "",
        &HEX[..62],
        &format!("{HEX}00"),
        secretish,
        &"0".repeat(64), // the all-zero placeholder
    ] {
        let err = Kek::from_hex(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidKek(_)), "{bad}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("zz1e") && !text.contains("7f1e9a"), "{text}");
    }
    assert!(Kek::from_bytes([0; 32]).is_err());
    assert!(Kek::from_bytes([1; 32]).is_ok());
}

#[test]
fn kek_id_is_stable_and_distinct() {
    let a = Kek::from_hex(HEX).unwrap();
    assert_eq!(a.id(), Kek::from_hex(HEX).unwrap().id());
    assert_ne!(a.id(), Kek::generate().id());
    assert_eq!(a.id().to_string().len(), 16);
    assert!(!HEX.contains(&a.id().to_string()));
}

#[test]
fn generate_file_then_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.hex");
    let generated = Kek::generate_file(&path).unwrap();
    let loaded = Kek::from_file(&path).unwrap();
    assert_eq!(generated.id(), loaded.id());
    // Never overwrites: every record sealed under the old key would be lost.
    assert!(matches!(
        Kek::generate_file(&path),
        Err(Error::KekFile { .. })
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn from_file_refuses_group_or_world_readable_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.hex");
    std::fs::write(&path, format!("{HEX}\n")).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match Kek::from_file(&path) {
            Err(Error::KekFilePermissions { mode: found, .. }) => assert_eq!(found, mode),
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(Kek::from_file(&path).is_ok(), "mode {mode:o}");
    }
    let err = {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Kek::from_file(&path).unwrap_err()
    };
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(!err.to_string().contains(HEX));
}

#[test]
fn from_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Kek::from_file(dir.path().join("missing")),
        Err(Error::KekFile { .. })
    ));
    assert!(matches!(
        Kek::from_file(dir.path()),
        Err(Error::KekFile { .. })
    ));
    let path = dir.path().join("garbage");
    std::fs::write(&path, "not a key").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(Kek::from_file(&path), Err(Error::InvalidKek(_))));
}

/// Runs itself again as a child process with the variable set: changing this process's
/// environment would need `unsafe` (edition 2024), which the crate's lints forbid everywhere.
#[test]
fn from_env() {
    const VAR: &str = "KEYFOLD_KEYSTORE_TEST_KEK";
    if std::env::var_os(VAR).is_some() {
        // The child.
        assert_eq!(
            Kek::from_env(VAR).unwrap().id(),
            Kek::from_hex(HEX).unwrap().id()
        );
        return;
    }
    match Kek::from_env(VAR) {
        Err(Error::KekEnv { var }) => assert_eq!(var, VAR),
        other => panic!("{other:?}"),
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["from_env", "--exact", "--quiet"])
        .env(VAR, HEX)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// `Debug` of every secret type shows `<redacted>` and none of the secret.
#[test]
fn debug_output_is_redacted() {
    let kek = Kek::from_hex(HEX).unwrap();
    let text = format!("{kek:?} {kek:#?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains(HEX) && !text.contains(&HEX[..16]), "{text}");
    assert!(
        text.contains(&kek.id().to_string()),
        "the id helps operators: {text}"
    );

    let secret = SecretBytes::new(b"super secret share".to_vec());
    let text = format!("{secret:?} {secret:#?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(
        !text.contains("super") && !text.contains(&hex::encode(b"super")),
        "{text}"
    );

    let identity = NodeIdentity::generate();
    let sealed = identity.to_sealed(&kek, "signer-1").unwrap();
    let identity = NodeIdentity::from_sealed(&kek, "signer-1", &sealed).unwrap();
    let plaintext = open(
        &kek,
        &Aad::new(
            Purpose::NodeIdentity,
            keyfold_keystore::identity::NODE_IDENTITY_KEY_ID,
            "signer-1",
            1,
        ),
        &sealed,
    )
    .unwrap();
    let text = format!("{identity:?} {identity:#?}");
    assert!(text.contains("<redacted>"), "{text}");
    // Neither secret key (bytes 1..33 and 33..65 of the sealed plaintext) appears.
    for secret in [
        &plaintext.expose_secret()[1..33],
        &plaintext.expose_secret()[33..65],
    ] {
        assert!(!text.contains(&hex::encode(secret)), "{text}");
        assert!(!text.contains(&format!("{secret:?}")), "{text}");
    }
    // The public keys may (and do) appear.
    assert!(text.contains(&hex::encode(identity.public().sign_key)));
}
