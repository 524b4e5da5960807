//! EIP-712 typed data (Dfns kind `Eip712`): `{types, domain, message, primaryType?}` → the
//! signing hash `keccak256(0x19 0x01 ‖ hashStruct(domain) ‖ hashStruct(message))`.
//!
//! The hashing is alloy's (`alloy-dyn-abi`'s resolver: `encodeType`, `encodeData`,
//! `hashStruct`). Around it this module follows viem's `hashTypedData`, which is what a Dfns client
//! using `@dfns/lib-viem` computes on its side:
//!
//! * `types.EIP712Domain` may be omitted; it is then derived from the domain fields that are
//!   present (and not `null`), in the order `name, version, chainId, verifyingContract, salt`.
//!   When it is given, the domain is hashed with the given definition.
//! * The Dfns `Eip712` request has no `primaryType`; when it is absent it is derived as ethers
//!   does: the one type that no other type references. Several candidates are refused.
//! * The same validation as viem's `validateTypedData`: struct names that cannot shadow Solidity
//!   types, only sized `intN`/`uintN`, `bytes1..32`, `bytes`, `string`, `bool`, `address` and
//!   defined structs (arrays of any), `bytesN` values of exactly N bytes, integers in range, and
//!   addresses that are `0x` + 40 hex with a valid EIP-55 checksum when mixed-case.
//!
//! Stricter than viem (we refuse where viem would silently ignore): a domain field that is not
//! declared in `types.EIP712Domain`, a domain field EIP-712 does not define, and a message that
//! lacks a declared field. Also refused: recursive struct types (alloy's resolver cannot represent
//! them) and two struct names where one is the other followed by `$…` (alloy sorts referenced
//! types differently from EIP-712 there). More lenient: `domain.chainId` may be a decimal or hex
//! string, as the Dfns type allows (`number | string`).

use std::collections::{BTreeMap, BTreeSet};

use alloy_dyn_abi::DynSolType;
use alloy_dyn_abi::eip712::{Eip712Types, PropertyDef, Resolver, TypeDef};
use alloy_primitives::keccak256;
use serde_json::{Map, Value};

use super::{B256, parse_address};
use crate::error::{Error, Result, clip};

const DOMAIN: &str = "EIP712Domain";
/// The domain fields of EIP-712, in their canonical order.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: String,
}

type Types = BTreeMap<String, Vec<Field>>;

/// The EIP-712 signing hash of a typed-data document (the Dfns `Eip712` request body, or any JSON
/// object with `types`, `domain`, `message` and optionally `primaryType`; other keys such as
/// `kind`, `network` or `externalId` are ignored). Malformed documents are
/// [`Error::InvalidInput`] with a message naming the problem.
pub fn eip712_digest(typed_data: &Value) -> Result<B256> {
    Ok(keccak256(eip712_preimage(typed_data)?))
}

/// `0x19 0x01 ‖ domainSeparator ‖ hashStruct(message)`: what [`eip712_digest`] hashes. Signers
/// that use presignatures hash this themselves rather than accept a bare digest.
pub fn eip712_preimage(typed_data: &Value) -> Result<Vec<u8>> {
    let doc = typed_data
        .as_object()
        .ok_or_else(|| Error::invalid("typed data must be a JSON object"))?;
    let mut types = parse_types(doc.get("types"))?;
    validate_types(&types)?;

    let domain = match doc.get("domain") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(domain)) => domain.clone(),
        Some(_) => return Err(Error::invalid("`domain` must be an object")),
    };
    let primary_type = match doc.get("primaryType") {
        None | Some(Value::Null) => derive_primary_type(&types)?,
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err(Error::invalid("`primaryType` must be a string")),
    };
    if primary_type != DOMAIN && !types.contains_key(&primary_type) {
        return Err(Error::invalid(format!(
            "primaryType `{}` is not defined in `types`",
            clip(&primary_type)
        )));
    }

    let present = |name: &str| domain.get(name).is_some_and(|v| !v.is_null());
    match types.get(DOMAIN) {
        Some(declared) => {
            for key in domain.keys().filter(|k| present(k)) {
                if !declared.iter().any(|f| &f.name == key) {
                    return Err(Error::invalid(format!(
                        "domain field `{}` is not declared in types.EIP712Domain",
                        clip(key)
                    )));
                }
            }
        }
        None => {
            for key in domain.keys().filter(|k| present(k)) {
                if !DOMAIN_FIELDS.iter().any(|(name, _)| name == key) {
                    return Err(Error::invalid(format!(
                        "unknown domain field `{}` (EIP-712 defines name, version, chainId, \
                         verifyingContract and salt)",
                        clip(key)
                    )));
                }
            }
            let derived = DOMAIN_FIELDS
                .iter()
                .filter(|(name, _)| present(name))
                .map(|(name, ty)| Field {
                    name: (*name).into(),
                    ty: (*ty).into(),
                })
                .collect();
            types.insert(DOMAIN.into(), derived);
        }
    }

    let resolver = build_resolver(&types)?;
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(&[0x19, 0x01]);
    let domain = Value::Object(domain);
    preimage
        .extend_from_slice(hash_struct(&resolver, &types, DOMAIN, &domain, "domain")?.as_slice());
    // As viem and MetaMask: a document whose primary type is the domain hashes the domain only.
    if primary_type != DOMAIN {
        let message = doc
            .get("message")
            .ok_or_else(|| Error::invalid("typed data is missing `message`"))?;
        preimage.extend_from_slice(
            hash_struct(&resolver, &types, &primary_type, message, "message")?.as_slice(),
        );
    }
    Ok(preimage)
}

fn parse_types(types: Option<&Value>) -> Result<Types> {
    let Some(Value::Object(types)) = types else {
        return Err(Error::invalid(
            "typed data must have `types`: an object of struct name → [{name, type}]",
        ));
    };
    let mut out = Types::new();
    for (struct_name, fields) in types {
        let fields = fields.as_array().ok_or_else(|| {
            Error::invalid(format!(
                "types.{} must be an array of {{name, type}}",
                clip(struct_name)
            ))
        })?;
        let mut parsed = Vec::with_capacity(fields.len());
        for field in fields {
            let (Some(name), Some(ty)) = (
                field.get("name").and_then(Value::as_str),
                field.get("type").and_then(Value::as_str),
            ) else {
                return Err(Error::invalid(format!(
                    "each field of types.{} must be {{\"name\": string, \"type\": string}}",
                    clip(struct_name)
                )));
            };
            if parsed.iter().any(|f: &Field| f.name == name) {
                return Err(Error::invalid(format!(
                    "types.{} declares field `{}` twice",
                    clip(struct_name),
                    clip(name)
                )));
            }
            parsed.push(Field {
                name: name.into(),
                ty: ty.into(),
            });
        }
        out.insert(struct_name.clone(), parsed);
    }
    Ok(out)
}

/// `T[2][]` → `T`.
fn base_type(ty: &str) -> &str {
    ty.split_once('[').map_or(ty, |(base, _)| base)
}

/// `T[2][]` → `Some("T[2]")`; `T` → `None`.
fn array_element(ty: &str) -> Option<&str> {
    let inner = ty.strip_suffix(']')?;
    let (element, size) = inner.rsplit_once('[')?;
    size.bytes().all(|b| b.is_ascii_digit()).then_some(element)
}

fn is_sized_integer(ty: &str) -> bool {
    let digits = ty
        .strip_prefix("uint")
        .or_else(|| ty.strip_prefix("int"))
        .unwrap_or("");
    !digits.starts_with('0')
        && digits
            .parse::<u16>()
            .is_ok_and(|bits| (8..=256).contains(&bits) && bits % 8 == 0)
}

fn is_bytes(ty: &str) -> bool {
    match ty.strip_prefix("bytes") {
        Some("") => true,
        Some(digits) => {
            !digits.starts_with('0') && digits.parse::<u8>().is_ok_and(|n| (1..=32).contains(&n))
        }
        None => false,
    }
}

fn is_atomic_or_dynamic(ty: &str) -> bool {
    matches!(ty, "address" | "bool" | "string") || is_bytes(ty) || is_sized_integer(ty)
}

/// viem's `validateReference` and `validateField`.
fn validate_types(types: &Types) -> Result<()> {
    for (name, fields) in types {
        let shadows_solidity = matches!(name.as_str(), "address" | "bool" | "string")
            || ["uint", "int", "bytes"].iter().any(|p| {
                name.strip_prefix(p)
                    .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
            });
        let legal = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b':'));
        if !legal || shadows_solidity {
            return Err(Error::invalid(format!(
                "invalid struct type name `{}`",
                clip(name)
            )));
        }
        for field in fields {
            let mut element = field.ty.as_str();
            while let Some(inner) = array_element(element) {
                element = inner;
            }
            if element.contains(['[', ']']) {
                return Err(Error::invalid(format!(
                    "invalid array type `{}` in types.{}",
                    clip(&field.ty),
                    clip(name)
                )));
            }
            if !types.contains_key(element) && !is_atomic_or_dynamic(element) {
                let hint = if matches!(element, "int" | "uint") {
                    " (EIP-712 needs a sized type such as uint256)"
                } else {
                    ""
                };
                return Err(Error::invalid(format!(
                    "unknown or invalid type `{}` of types.{}.{}{hint}",
                    clip(&field.ty),
                    clip(name),
                    clip(&field.name)
                )));
            }
        }
    }
    // EIP-712 sorts referenced types by name; alloy sorts the encoded `Name(…)` strings. The two
    // orders differ only when one name is another followed by `$` (0x24 sorts before `(`).
    for name in types.keys() {
        let prefix = format!("{name}$");
        if let Some(other) = types.keys().find(|k| k.starts_with(&prefix)) {
            return Err(Error::invalid(format!(
                "struct type names `{}` and `{}` are not supported together",
                clip(name),
                clip(other)
            )));
        }
    }
    Ok(())
}

/// The one type that no other type references (ethers' rule; `EIP712Domain` never counts).
fn derive_primary_type(types: &Types) -> Result<String> {
    let referenced: BTreeSet<&str> = types
        .iter()
        .filter(|(name, _)| name.as_str() != DOMAIN)
        .flat_map(|(name, fields)| {
            fields
                .iter()
                .map(|f| base_type(&f.ty))
                .filter(move |base| base != name)
        })
        .collect();
    let roots: Vec<&str> = types
        .keys()
        .map(String::as_str)
        .filter(|name| *name != DOMAIN && !referenced.contains(name))
        .collect();
    match roots.as_slice() {
        [root] => Ok((*root).to_owned()),
        [] => Err(Error::invalid(
            "cannot derive primaryType: `types` has no struct that other structs do not \
             reference; pass primaryType",
        )),
        several => Err(Error::invalid(format!(
            "cannot derive primaryType: `types` has several root structs ({}); pass primaryType",
            clip(several.join(", "))
        ))),
    }
}

fn build_resolver(types: &Types) -> Result<Resolver> {
    let mut map = BTreeMap::new();
    for (name, fields) in types {
        let props = fields
            .iter()
            .map(|f| PropertyDef::new(f.ty.clone(), f.name.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|props| TypeDef::new(name.clone(), props.clone()).map(|_| props))
            .map_err(|e| {
                Error::invalid(format!(
                    "invalid EIP-712 type `{}`: {}",
                    clip(name),
                    clip(e)
                ))
            })?;
        map.insert(name.clone(), props);
    }
    Ok(Resolver::from(Eip712Types::from(map)))
}

fn hash_struct(
    resolver: &Resolver,
    types: &Types,
    name: &str,
    value: &Value,
    what: &str,
) -> Result<B256> {
    let ty = resolver.resolve(name).map_err(|e| {
        Error::invalid(format!(
            "invalid EIP-712 types for `{}`: {}",
            clip(name),
            clip(e)
        ))
    })?;
    check_value(types, name, value, what)?;
    let value = ty.coerce_json(value).map_err(|e| {
        Error::invalid(format!(
            "EIP-712 {what} does not match its types: {}",
            clip(e)
        ))
    })?;
    resolver
        .eip712_data_word(&value)
        .map_err(|e| Error::invalid(format!("cannot hash the EIP-712 {what}: {}", clip(e))))
}

/// Walks `value` along type `ty` so that errors name the offending field (`message.to.wallet`),
/// and checks what alloy's coercion does not: addresses are `0x` + 40 hex and checksummed. Called after `resolve`, so the types are acyclic and the walk is bounded.
fn check_value(types: &Types, ty: &str, value: &Value, path: &str) -> Result<()> {
    if let Some(element) = array_element(ty) {
        let items = value
            .as_array()
            .ok_or_else(|| Error::invalid(format!("{} must be an array ({ty})", clip(path))))?;
        for (i, item) in items.iter().enumerate() {
            check_value(types, element, item, &format!("{path}[{i}]"))?;
        }
        return Ok(());
    }
    if let Some(fields) = types.get(ty) {
        let object = value
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{} must be an object ({ty})", clip(path))))?;
        for field in fields {
            let path = format!("{path}.{}", field.name);
            let value = object
                .get(&field.name)
                .ok_or_else(|| Error::invalid(format!("{} is missing", clip(&path))))?;
            check_value(types, &field.ty, value, &path)?;
        }
        return Ok(());
    }
    if ty == "address" {
        let text = value
            .as_str()
            .ok_or_else(|| Error::invalid(format!("{} must be an address string", clip(path))))?;
        parse_address(text).map_err(|e| Error::invalid(format!("{}: {e}", clip(path))))?;
        return Ok(());
    }
    // Atomic and dynamic leaves: alloy's coercion, here only to name the offending field.
    let leaf = DynSolType::parse(ty)
        .map_err(|e| Error::invalid(format!("{}: invalid type `{ty}`: {}", clip(path), clip(e))))?;
    leaf.coerce_json(value).map_err(|_| {
        Error::invalid(format!(
            "{}: expected {ty}, got {}",
            clip(path),
            clip(value)
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use alloy_primitives::b256;
    use serde_json::json;

    /// The example of EIP-712 itself (`Example.js`): the Mail from Cow to Bob.
    fn mail() -> Value {
        json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "Person": [
                    {"name": "name", "type": "string"},
                    {"name": "wallet", "type": "address"}
                ],
                "Mail": [
                    {"name": "from", "type": "Person"},
                    {"name": "to", "type": "Person"},
                    {"name": "contents", "type": "string"}
                ]
            },
            "primaryType": "Mail",
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
            },
            "message": {
                "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"
            }
        })
    }

    const MAIL_HASH: B256 =
        b256!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");

    #[test]
    fn eip712_mail_example() {
        assert_eq!(eip712_digest(&mail()).unwrap(), MAIL_HASH);
        // The same through alloy's own TypedData (which always derives the domain type).
        let typed: alloy_dyn_abi::TypedData = serde_json::from_value(mail()).unwrap();
        assert_eq!(typed.eip712_signing_hash().unwrap(), MAIL_HASH);
    }

    #[test]
    fn dfns_shape_without_domain_type_or_primary_type() {
        // What a Dfns client sends: no EIP712Domain in types, no primaryType, extra keys.
        let mut doc = mail();
        doc["types"].as_object_mut().unwrap().remove("EIP712Domain");
        doc.as_object_mut().unwrap().remove("primaryType");
        doc["kind"] = json!("Eip712");
        doc["network"] = json!("Ethereum");
        assert_eq!(eip712_digest(&doc).unwrap(), MAIL_HASH);
        // chainId as a decimal or hex string (the Dfns type allows `number | string`).
        doc["domain"]["chainId"] = json!("1");
        assert_eq!(eip712_digest(&doc).unwrap(), MAIL_HASH);
        doc["domain"]["chainId"] = json!("0x1");
        assert_eq!(eip712_digest(&doc).unwrap(), MAIL_HASH);
        // A null domain field is absent, as in viem.
        doc["domain"]["salt"] = Value::Null;
        assert_eq!(eip712_digest(&doc).unwrap(), MAIL_HASH);
        // Lower-case addresses carry no checksum and are the same addresses.
        doc["message"]["to"]["wallet"] = json!("0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        assert_eq!(eip712_digest(&doc).unwrap(), MAIL_HASH);
    }

    fn err(doc: &Value) -> String {
        let e = eip712_digest(doc).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        e.to_string()
    }

    #[test]
    fn malformed_documents_are_bad_input() {
        assert!(err(&json!([])).contains("JSON object"));
        assert!(err(&json!({"domain": {}, "message": {}})).contains("`types`"));

        let mut d = mail();
        d["message"]["to"]["wallet"] = json!("0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbb");
        assert!(err(&d).contains("message.to.wallet") && err(&d).contains("checksum"));

        let mut d = mail();
        d["message"]["from"].as_object_mut().unwrap().remove("name");
        assert_eq!(err(&d), "message.from.name is missing");

        let mut d = mail();
        d["primaryType"] = json!("Letter");
        assert!(err(&d).contains("primaryType `Letter`"));

        let mut d = mail();
        d["types"]["Person"][0]["type"] = json!("uint");
        assert!(err(&d).contains("sized type"));

        let mut d = mail();
        d["types"]["Person"][0]["type"] = json!("uint7");
        assert!(err(&d).contains("uint7"));

        let mut d = mail();
        d["types"]["Person"][1]["type"] = json!("Wallet");
        assert!(err(&d).contains("Wallet"));

        let mut d = mail();
        d["types"]["bytes33"] = json!([]);
        assert!(err(&d).contains("bytes33"));

        let mut d = mail();
        d["domain"]["salt"] = json!(format!("0x{}", "00".repeat(32)));
        assert!(err(&d).contains("not declared in types.EIP712Domain"));

        let mut d = mail();
        d["types"].as_object_mut().unwrap().remove("EIP712Domain");
        d["domain"]["chain"] = json!(1);
        assert!(err(&d).contains("unknown domain field `chain`"));

        let mut d = mail();
        d["types"]["Mail"][2]["type"] = json!("bytes4");
        d["message"]["contents"] = json!("0x010203");
        assert_eq!(
            err(&d),
            "message.contents: expected bytes4, got \"0x010203\""
        );

        let mut d = mail();
        d["types"]["Mail"][2]["type"] = json!("uint8");
        d["message"]["contents"] = json!(256);
        assert_eq!(err(&d), "message.contents: expected uint8, got 256");

        let mut d = mail();
        d["types"]["Mail"][2]["type"] = json!("uint256");
        d["message"]["contents"] = json!(1.5);
        assert_eq!(err(&d), "message.contents: expected uint256, got 1.5");

        let mut d = mail();
        d["types"]["Mail"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "to", "type": "string"}));
        assert!(err(&d).contains("twice"));

        let mut d = mail();
        d["types"]["Node"] = json!([{"name": "next", "type": "Node2"}]);
        d["types"]["Node2"] = json!([{"name": "next", "type": "Node"}]);
        d["types"]["Mail"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "n", "type": "Node"}));
        d["message"]["n"] = json!({"next": {"next": {}}});
        assert!(err(&d).contains("invalid EIP-712 types"));
    }

    #[test]
    fn primary_type_derivation() {
        let mut d = mail();
        d.as_object_mut().unwrap().remove("primaryType");
        assert_eq!(eip712_digest(&d).unwrap(), MAIL_HASH);
        // Two roots: ambiguous.
        d["types"]["Other"] = json!([{"name": "x", "type": "uint256"}]);
        assert!(err(&d).contains("several root structs (Mail, Other)"));
        // Given explicitly, fine again.
        d["primaryType"] = json!("Mail");
        assert_eq!(eip712_digest(&d).unwrap(), MAIL_HASH);
        // The domain as primary type hashes only the domain.
        d["primaryType"] = json!("EIP712Domain");
        let only_domain = eip712_digest(&d).unwrap();
        assert_ne!(only_domain, MAIL_HASH);
    }

    #[test]
    fn dollar_suffixed_names_are_refused() {
        let mut d = mail();
        d["types"]["Mail$"] = json!([]);
        assert!(err(&d).contains("not supported together"));
    }
}
