//! Login, user action signing and registration (Dfns `generated/auth`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Credential kinds Dfns names. Keyfold verifies `Key` today; the others are refused with a
/// clear 400 until their issue lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CredentialKind {
    Fido2,
    Key,
    Password,
    Totp,
    RecoveryKey,
    PasswordProtectedKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fido2 => "Fido2",
            Self::Key => "Key",
            Self::Password => "Password",
            Self::Totp => "Totp",
            Self::RecoveryKey => "RecoveryKey",
            Self::PasswordProtectedKey => "PasswordProtectedKey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Fido2" => Self::Fido2,
            "Key" => Self::Key,
            "Password" => Self::Password,
            "Totp" => Self::Totp,
            "RecoveryKey" => Self::RecoveryKey,
            "PasswordProtectedKey" => Self::PasswordProtectedKey,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialFactor {
    First,
    Second,
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportedCredentialKind {
    pub kind: CredentialKind,
    pub factor: CredentialFactor,
    pub requires_second_factor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    Required,
    Preferred,
    Discouraged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Attestation {
    None,
    Indirect,
    Direct,
    Enterprise,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowCredential {
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl AllowCredential {
    pub fn public_key(id: impl Into<String>) -> Self {
        Self {
            kind: "public-key".into(),
            id: id.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowCredentialWithKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub encrypted_private_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowCredentials {
    pub key: Vec<AllowCredential>,
    pub webauthn: Vec<AllowCredential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_protected_key: Option<Vec<AllowCredentialWithKey>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelyingParty {
    pub id: String,
    pub name: String,
}

/// `POST /auth/login/init` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateLoginChallengeBody {
    #[schema(max_length = 254)]
    pub username: Option<String>,
    #[schema(max_length = 512)]
    pub org_id: String,
    #[schema(max_length = 128)]
    pub login_code: Option<String>,
}

/// The challenge a credential signs: returned by `POST /auth/login/init` and
/// `POST /auth/action/init`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// The string the credential signs (inside its clientData).
    pub challenge: String,
    /// Identifies this signing session; send it back with the signed challenge.
    pub challenge_identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp: Option<RelyingParty>,
    pub supported_credential_kinds: Vec<SupportedCredentialKind>,
    pub user_verification: UserVerification,
    pub attestation: Attestation,
    pub allow_credentials: AllowCredentials,
    pub external_authentication_url: String,
}

/// A credential's proof over a challenge. `clientData` is base64url of the JSON the signer
/// built (`{"type":"key.get","challenge":…}` for keys), `signature` base64url of its signature.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredentialAssertion {
    #[schema(max_length = 512)]
    pub cred_id: String,
    #[schema(max_length = 16384)]
    pub client_data: String,
    #[schema(max_length = 16384)]
    pub signature: String,
    #[schema(max_length = 64)]
    pub algorithm: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fido2CredentialAssertion {
    #[schema(max_length = 512)]
    pub cred_id: String,
    #[schema(max_length = 16384)]
    pub client_data: String,
    #[schema(max_length = 16384)]
    pub authenticator_data: String,
    #[schema(max_length = 16384)]
    pub signature: String,
    #[schema(max_length = 512)]
    pub user_handle: Option<String>,
    #[schema(max_length = 64)]
    pub algorithm: Option<String>,
}

/// First or second factor of a login or user action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind")]
pub enum Assertion {
    Key {
        #[serde(rename = "credentialAssertion")]
        credential_assertion: KeyCredentialAssertion,
    },
    Fido2 {
        #[serde(rename = "credentialAssertion")]
        credential_assertion: Fido2CredentialAssertion,
    },
    PasswordProtectedKey {
        #[serde(rename = "credentialAssertion")]
        credential_assertion: KeyCredentialAssertion,
    },
    RecoveryKey {
        #[serde(rename = "credentialAssertion")]
        credential_assertion: KeyCredentialAssertion,
    },
    Password {
        #[schema(max_length = 1024)]
        password: String,
    },
    Totp {
        #[serde(rename = "otpCode")]
        #[schema(max_length = 16)]
        otp_code: String,
    },
}

impl Assertion {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Key { .. } => CredentialKind::Key,
            Self::Fido2 { .. } => CredentialKind::Fido2,
            Self::PasswordProtectedKey { .. } => CredentialKind::PasswordProtectedKey,
            Self::RecoveryKey { .. } => CredentialKind::RecoveryKey,
            Self::Password { .. } => CredentialKind::Password,
            Self::Totp { .. } => CredentialKind::Totp,
        }
    }
}

/// `POST /auth/login` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginBody {
    #[schema(max_length = 512)]
    pub challenge_identifier: String,
    pub first_factor: Assertion,
    pub second_factor: Option<Assertion>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The access token (a JWT) to send as `Authorization: Bearer …`.
    pub token: String,
}

/// `PUT /auth/logout` body (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutBody {
    /// Revoke every login session of the caller, not just this token.
    pub all_sessions: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Delete,
    Get,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Get => "GET",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum UserActionServerKind {
    Api,
    Staff,
}

/// `POST /auth/action/init` body: what the caller is about to do, exactly.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserActionChallengeBody {
    pub user_action_server_kind: Option<UserActionServerKind>,
    pub user_action_http_method: HttpMethod,
    #[schema(max_length = 2048)]
    pub user_action_http_path: String,
    /// The exact body string the request will carry (`""` for none).
    pub user_action_payload: String,
}

/// `POST /auth/action` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserActionSignatureBody {
    #[schema(max_length = 512)]
    pub challenge_identifier: String,
    pub first_factor: Assertion,
    pub second_factor: Option<Assertion>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserActionResponse {
    /// Single-use token for the `x-dfns-useraction` header of the signed request.
    pub user_action: String,
}

/// `POST /auth/registration/init` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRegistrationChallengeBody {
    #[schema(max_length = 512)]
    pub org_id: String,
    #[schema(max_length = 254)]
    pub username: String,
    #[schema(max_length = 128)]
    pub registration_code: String,
}

/// `PUT /auth/registration/code` body: send a fresh registration code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResendRegistrationCodeBody {
    #[schema(max_length = 254)]
    pub username: String,
    #[schema(max_length = 512)]
    pub org_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationUser {
    pub id: String,
    pub display_name: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportedCredentialKinds {
    pub first_factor: Vec<CredentialKind>,
    pub second_factor: Vec<CredentialKind>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    pub resident_key: String,
    pub require_resident_key: bool,
    pub user_verification: UserVerification,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PubKeyCredParam {
    #[serde(rename = "type")]
    pub kind: String,
    pub alg: i64,
}

/// The registration challenge (`POST /auth/registration/init`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationChallengeResponse {
    pub user: RegistrationUser,
    /// Bearer token for `POST /auth/registration`.
    pub temporary_authentication_token: String,
    pub challenge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp: Option<RelyingParty>,
    pub supported_credential_kinds: SupportedCredentialKinds,
    pub authenticator_selection: AuthenticatorSelection,
    pub attestation: Attestation,
    pub pub_key_cred_params: Vec<PubKeyCredParam>,
    pub exclude_credentials: Vec<AllowCredential>,
    pub otp_url: String,
}

/// A new credential's proof of possession. For `Key`: `clientData` is base64url of
/// `{"type":"key.create","challenge":…,…}` and `attestationData` base64url of
/// `{"publicKey":PEM,"signature":hex,"algorithm"?}` where the signature covers
/// `{"clientDataHash":hex(sha256(clientData)),"publicKey":PEM}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    #[schema(max_length = 512)]
    pub cred_id: String,
    #[schema(max_length = 16384)]
    pub client_data: String,
    #[schema(max_length = 16384)]
    pub attestation_data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "credentialKind")]
pub enum NewCredential {
    Key {
        #[serde(rename = "credentialInfo")]
        credential_info: CredentialInfo,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
    Fido2 {
        #[serde(rename = "credentialInfo")]
        credential_info: CredentialInfo,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
    PasswordProtectedKey {
        #[serde(rename = "credentialInfo")]
        credential_info: CredentialInfo,
        #[serde(rename = "encryptedPrivateKey")]
        #[schema(max_length = 16384)]
        encrypted_private_key: String,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
    RecoveryKey {
        #[serde(rename = "credentialInfo")]
        credential_info: CredentialInfo,
        #[serde(rename = "encryptedPrivateKey")]
        #[schema(max_length = 16384)]
        encrypted_private_key: Option<String>,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
    Password {
        #[serde(rename = "credentialInfo")]
        credential_info: serde_json::Value,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
    Totp {
        #[serde(rename = "credentialInfo")]
        credential_info: serde_json::Value,
        #[serde(rename = "credentialName")]
        #[schema(max_length = 128)]
        credential_name: Option<String>,
    },
}

impl NewCredential {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Key { .. } => CredentialKind::Key,
            Self::Fido2 { .. } => CredentialKind::Fido2,
            Self::PasswordProtectedKey { .. } => CredentialKind::PasswordProtectedKey,
            Self::RecoveryKey { .. } => CredentialKind::RecoveryKey,
            Self::Password { .. } => CredentialKind::Password,
            Self::Totp { .. } => CredentialKind::Totp,
        }
    }
}

/// `POST /auth/registration` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    pub first_factor_credential: NewCredential,
    pub second_factor_credential: Option<NewCredential>,
    pub recovery_credential: Option<NewCredential>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredCredential {
    pub uuid: String,
    pub kind: CredentialKind,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredUser {
    pub id: String,
    pub username: String,
    pub org_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub credential: RegisteredCredential,
    pub user: RegisteredUser,
}

/// `POST /auth/credentials/init`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCredentialChallengeBody {
    pub kind: CredentialKind,
}

/// `POST /auth/credentials/code/init`: no bearer token; the code from
/// `POST /auth/credentials/code` names the user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCredentialChallengeWithCodeBody {
    pub credential_kind: CredentialKind,
    #[schema(max_length = 64)]
    pub code: String,
}

/// The challenge a new credential answers (`/auth/credentials/init`, `…/code/init`).
/// For `Fido2` it is what `navigator.credentials.create()` needs: the WebAuthn challenge is
/// the UTF-8 bytes of `challenge`, as the Dfns browser SDK sends it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialChallengeResponse {
    pub kind: CredentialKind,
    pub user: RegistrationUser,
    pub challenge_identifier: String,
    pub challenge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp: Option<RelyingParty>,
    pub attestation: Attestation,
    pub pub_key_cred_params: Vec<PubKeyCredParam>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_credentials: Option<Vec<AllowCredential>>,
    /// Deprecated by Dfns; always empty here.
    pub temporary_authentication_token: String,
    /// Totp: the `otpauth://` URL to load into an authenticator app (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp_url: Option<String>,
}

/// `POST /auth/credentials` and `POST /auth/credentials/code/verify`: the new credential
/// (as in registration) and the challenge it answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCredentialBody {
    #[serde(flatten)]
    pub credential: NewCredential,
    #[schema(max_length = 512)]
    pub challenge_identifier: String,
}

/// A credential as `/auth/credentials` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialResponse {
    pub kind: CredentialKind,
    pub credential_id: String,
    pub credential_uuid: String,
    pub date_created: String,
    pub is_active: bool,
    pub name: String,
    pub public_key: String,
    pub relying_party_id: String,
    pub origin: String,
}

/// `PUT /auth/credentials/activate` and `…/deactivate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialUuidBody {
    #[schema(max_length = 512)]
    pub credential_uuid: String,
}

/// `POST /auth/credentials/code`: until when the code may be used (ISO 8601 or unix seconds).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCredentialCodeBody {
    #[schema(value_type = String)]
    pub expiration: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialCodeResponse {
    pub code: String,
    pub expiration: String,
}

/// The kinds of application `POST /auth/apps` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AppKindName {
    /// A browser or mobile front end: WebAuthn ceremonies from `expectedOrigin` for
    /// relying party `expectedRpId`.
    ClientSideApplication,
    /// A back end: every request under it carries its signature (`X-DFNS-APPID`,
    /// `X-DFNS-NONCE`, `X-DFNS-APISIGNATURE`), made with the key whose public half is
    /// `publicKey`.
    ServerSideApplication,
}

/// `POST /auth/apps`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAppBody {
    #[schema(max_length = 128)]
    pub name: String,
    pub kind: AppKindName,
    /// Client-side: the exact origin (`https://wallet.example.com`) WebAuthn runs at.
    #[schema(max_length = 512)]
    pub expected_origin: Option<String>,
    /// Client-side: the relying party id (the origin's host or a registrable suffix of it).
    #[schema(max_length = 253)]
    pub expected_rp_id: Option<String>,
    /// Server-side: PEM SPKI of the key the app signs its requests with.
    #[schema(max_length = 4096)]
    pub public_key: Option<String>,
}

/// An application as `/auth/apps` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppResponse {
    pub app_id: String,
    pub kind: AppKindName,
    pub org_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_rp_id: Option<String>,
    pub name: String,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_origin: Option<String>,
    /// Server-side: the key its requests are verified with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub permission_assignments: Vec<serde_json::Value>,
    pub access_tokens: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct AppIdPath {
    #[param(max_length = 512)]
    pub app_id: String,
}

/// `POST /auth/registration/delegated`: a service account (or any identity holding
/// `Auth:Register:Delegated`) creates an end user and gets its registration challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelegatedRegistrationBody {
    #[schema(max_length = 320)]
    pub email: String,
    /// Always `EndUser`.
    #[schema(max_length = 32)]
    pub kind: String,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

/// `POST /auth/login/delegated`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelegatedLoginBody {
    #[schema(max_length = 320)]
    pub username: String,
}

/// One wallet to create at `POST /auth/registration/enduser`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndUserWalletSpec {
    #[schema(max_length = 64)]
    pub network: String,
    #[schema(max_length = 128)]
    pub name: Option<String>,
}

/// `POST /auth/registration/enduser`: registration plus the end user's wallets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterEndUserBody {
    #[serde(flatten)]
    pub registration: RegisterBody,
    pub wallets: Vec<EndUserWalletSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Authentication {
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterEndUserResponse {
    pub credential: RegisteredCredential,
    pub user: RegisteredUser,
    pub authentication: Authentication,
    /// The wallets asked for, each on a new key delegated to this end user.
    pub wallets: Vec<crate::wallets::WalletResponse>,
}
