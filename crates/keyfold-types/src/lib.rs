//! Wire types of the Keyfold API.
//!
//! Keyfold speaks the Dfns API on the wire, so every struct here mirrors a shape from the
//! official TypeScript SDK (`@dfns/sdk` 0.8.21, `generated/<area>/types.d.ts`): field names,
//! enum spellings and optionality are theirs, not ours. Nothing in this crate validates
//! beyond what serde does — rules live in `keyfold-domain` — and nothing here knows about
//! HTTP frameworks or databases. The `ToSchema` derives feed the generated OpenAPI document.

pub mod auth;
pub mod error;
pub mod keys;
pub mod networks;
pub mod page;
pub mod permissions;
pub mod transfers;
pub mod users;
pub mod wallets;

pub use error::{ErrorBody, ErrorDetail};
pub use page::{ListResponse, PageQuery};

/// Upper bounds shared by the domain's validation and the OpenAPI document, so that what we
/// advertise is what we enforce.
pub mod limits {
    /// RFC 5321 caps a forward path (an email address) at 254 octets.
    pub const EMAIL_MAX: usize = 254;
    /// Display names, credential names, usernames that are not emails.
    pub const NAME_MAX: usize = 128;
    /// Caller-chosen correlation ids.
    pub const EXTERNAL_ID_MAX: usize = 128;
    /// Opaque identifiers we hand out or accept (ids, challenge identifiers, credential ids).
    pub const ID_MAX: usize = 512;
    /// A PEM public key (RSA-4096 SPKI PEM is ~800 bytes).
    pub const PUBLIC_KEY_MAX: usize = 4096;
    /// Base64url blobs inside assertions and attestations (clientData, signatures, CBOR).
    pub const BLOB_MAX: usize = 16 * 1024;
    /// Largest page a list endpoint returns.
    pub const PAGE_MAX: u32 = 100;
    /// Page size when the caller gives none.
    pub const PAGE_DEFAULT: u32 = 50;
}
