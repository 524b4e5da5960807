//! Who is calling, and what they may do — checked by the type system.
//!
//! A [`Principal`] is an authenticated identity with the operations its permissions grant.
//! Use cases that read or change state take a [`Granted<O>`] for their operation `O`; the only
//! way to obtain one is [`Principal::authorize`], which checks the grant. A handler that skips
//! the check has no `Granted` to pass and does not compile.
//!
//! Operation names are the Dfns ones (`Auth:Users:Create`, …), so permissions written for Dfns
//! mean the same here.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use keyfold_types::users::UserKind;

use crate::error::{DomainError, Result};
use crate::model::TokenKind;

/// A permission-checked operation.
pub trait Operation: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! operations {
    ($($ty:ident = $name:literal;)*) => {
        /// One marker type per operation, for [`Granted`].
        pub mod op {
            $(
                #[doc = concat!("`", $name, "`")]
                #[derive(Debug)]
                pub enum $ty {}
                impl super::Operation for $ty {
                    const NAME: &'static str = $name;
                }
            )*
        }
        /// Every operation name Keyfold knows. A permission naming anything else is refused.
        pub const ALL_OPERATIONS: &[&str] = &[$($name),*];
    };
}

operations! {
    AuthLogsRead = "Auth:Logs:Read";
    UsersCreate = "Auth:Users:Create";
    UsersRead = "Auth:Users:Read";
    UsersUpdate = "Auth:Users:Update";
    UsersActivate = "Auth:Users:Activate";
    UsersDeactivate = "Auth:Users:Deactivate";
    UsersDelete = "Auth:Users:Delete";
    ServiceAccountsCreate = "Auth:ServiceAccounts:Create";
    ServiceAccountsRead = "Auth:ServiceAccounts:Read";
    ServiceAccountsUpdate = "Auth:ServiceAccounts:Update";
    ServiceAccountsDeactivate = "Auth:ServiceAccounts:Deactivate";
    ServiceAccountsActivate = "Auth:ServiceAccounts:Activate";
    ServiceAccountsDelete = "Auth:ServiceAccounts:Delete";
    PatsCreate = "Auth:Pats:Create";
    RegisterDelegated = "Auth:Register:Delegated";
    LoginDelegated = "Auth:Login:Delegated";
    RecoverDelegated = "Auth:Recover:Delegated";
    AppsRead = "Auth:Apps:Read";
    AppsCreate = "Auth:Apps:Create";
    AppsUpdate = "Auth:Apps:Update";
    CredsCreate = "Auth:Creds:Create";
    CredsRead = "Auth:Creds:Read";
    CredsUpdate = "Auth:Creds:Update";
    PermissionsArchive = "Permissions:Archive";
    PermissionsCreate = "Permissions:Create";
    PermissionsRead = "Permissions:Read";
    PermissionsUpdate = "Permissions:Update";
    PermissionsAssign = "Permissions:Assign";
    PermissionsRevoke = "Permissions:Revoke";
    PermissionsAssignmentsRead = "Permissions:Assignments:Read";
    PoliciesArchive = "Policies:Archive";
    PoliciesCreate = "Policies:Create";
    PoliciesRead = "Policies:Read";
    PoliciesUpdate = "Policies:Update";
    PoliciesApprovalsRead = "Policies:Approvals:Read";
    PoliciesApprovalsApprove = "Policies:Approvals:Approve";
    SignersList = "Signers:ListSigners";
    KeysCreate = "Keys:Create";
    KeysDelete = "Keys:Delete";
    KeysRead = "Keys:Read";
    KeysUpdate = "Keys:Update";
    KeysDelegate = "Keys:Delegate";
    KeysImport = "Keys:Import";
    KeysExport = "Keys:Export";
    KeysDerive = "Keys:Derive";
    KeysSignaturesCreate = "Keys:Signatures:Create";
    KeysSignaturesRead = "Keys:Signatures:Read";
    WalletsCreate = "Wallets:Create";
    WalletsRead = "Wallets:Read";
    WalletsUpdate = "Wallets:Update";
    WalletsTagsAdd = "Wallets:Tags:Add";
    WalletsTagsDelete = "Wallets:Tags:Delete";
    WalletsTransactionsCreate = "Wallets:Transactions:Create";
    WalletsTransactionsRead = "Wallets:Transactions:Read";
    WalletsTransfersCreate = "Wallets:Transfers:Create";
    WalletsTransfersRead = "Wallets:Transfers:Read";
    WalletsGenerateSignature = "Wallets:GenerateSignature";
    WebhooksCreate = "Webhooks:Create";
    WebhooksRead = "Webhooks:Read";
    WebhooksUpdate = "Webhooks:Update";
    WebhooksDelete = "Webhooks:Delete";
    WebhooksPing = "Webhooks:Ping";
    WebhooksEventsRead = "Webhooks:Events:Read";
}

/// What an end user may do without any permission: read and use the keys and wallets
/// delegated to them, and nothing else. [`Principal::owner_scope`] confines these operations
/// to those keys, so an end user never sees another identity's wallet.
pub const END_USER_OPERATIONS: &[&str] = &[
    "Keys:Read",
    "Keys:Signatures:Create",
    "Keys:Signatures:Read",
    "Wallets:Read",
    "Wallets:GenerateSignature",
    "Wallets:Transactions:Create",
    "Wallets:Transactions:Read",
    "Wallets:Transfers:Create",
    "Wallets:Transfers:Read",
];

pub fn is_known_operation(name: &str) -> bool {
    ALL_OPERATIONS.contains(&name)
}

/// An authenticated caller.
#[derive(Clone)]
pub struct Principal {
    pub org_id: String,
    /// The user or service account the token acts for.
    pub user_id: String,
    pub username: String,
    pub user_kind: UserKind,
    pub is_service_account: bool,
    /// The access token presented (its `jti`).
    pub token_id: String,
    pub token_kind: TokenKind,
    /// The server-side application this token is bound to: its requests must carry that
    /// application's signature.
    pub bound_app: Option<String>,
    operations: Arc<HashSet<String>>,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("token_id", &self.token_id)
            .field("token_kind", &self.token_kind)
            .field("operations", &self.operations.len())
            .finish()
    }
}

impl Principal {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        org_id: String,
        user_id: String,
        username: String,
        user_kind: UserKind,
        is_service_account: bool,
        token_id: String,
        token_kind: TokenKind,
        operations: Arc<HashSet<String>>,
    ) -> Self {
        // An end user's own session (never a PAT, which holds only what it was assigned)
        // may use the keys delegated to it; `owner_scope` keeps it to those.
        let operations = if user_kind == UserKind::EndUser && token_kind != TokenKind::Pat {
            let mut all = (*operations).clone();
            all.extend(END_USER_OPERATIONS.iter().map(|s| (*s).to_string()));
            Arc::new(all)
        } else {
            operations
        };
        Self {
            org_id,
            user_id,
            username,
            user_kind,
            is_service_account,
            token_id,
            token_kind,
            bound_app: None,
            operations,
        }
    }

    /// Binds the principal to a server-side application.
    pub fn bound_to(mut self, app_id: Option<String>) -> Self {
        self.bound_app = app_id;
        self
    }

    /// `Some(user id)` when this identity may only see and use keys delegated to it (an end
    /// user); `None` for the organization's own identities, who see every key.
    pub fn owner_scope(&self) -> Option<&str> {
        (self.user_kind == UserKind::EndUser).then_some(self.user_id.as_str())
    }

    pub fn can(&self, operation: &str) -> bool {
        self.operations.contains(operation)
    }

    /// The only way to mint a [`Granted`] capability.
    pub fn authorize<O: Operation>(&self) -> Result<Granted<O>> {
        if self.can(O::NAME) {
            Ok(Granted {
                principal: self.clone(),
                _op: PhantomData,
            })
        } else {
            Err(DomainError::denied(format!(
                "this identity lacks the permission for {}",
                O::NAME
            )))
        }
    }
}

/// Proof that `principal` holds operation `O`. Cannot be built outside this module.
pub struct Granted<O: Operation> {
    principal: Principal,
    _op: PhantomData<fn() -> O>,
}

impl<O: Operation> fmt::Debug for Granted<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Granted")
            .field("operation", &O::NAME)
            .field("principal", &self.principal)
            .finish()
    }
}

impl<O: Operation> Granted<O> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    pub fn org_id(&self) -> &str {
        &self.principal.org_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(ops: &[&str]) -> Principal {
        Principal::new(
            "or-1".into(),
            "us-1".into(),
            "a@b.c".into(),
            UserKind::CustomerEmployee,
            false,
            "to-1".into(),
            TokenKind::Token,
            Arc::new(ops.iter().map(|s| s.to_string()).collect()),
        )
    }

    #[test]
    fn authorize_checks_the_grant() {
        let p = principal(&["Auth:Users:Read"]);
        assert!(p.authorize::<op::UsersRead>().is_ok());
        assert!(matches!(
            p.authorize::<op::UsersCreate>(),
            Err(DomainError::PermissionDenied(_))
        ));
    }

    #[test]
    fn operation_names_are_unique() {
        let set: HashSet<_> = ALL_OPERATIONS.iter().collect();
        assert_eq!(set.len(), ALL_OPERATIONS.len());
        assert!(is_known_operation("Auth:Users:Create"));
        assert!(!is_known_operation("Auth:Users:Explode"));
    }
}
