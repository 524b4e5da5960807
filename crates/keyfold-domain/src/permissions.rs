//! Permissions (roles) and assignments.
//!
//! A permission is a named set of operation names; assigning it to an identity (a user, a
//! service account, a PAT) grants those operations. Authentication reads an identity's
//! operations on every request from the assignments of its non-archived permissions, so
//! every change here counts on the very next request. The bootstrap administrator permission
//! and its assignment to the root user are immutable: an organization can never lock itself
//! out by editing them.

use std::collections::BTreeSet;
use std::sync::Arc;

use keyfold_types::limits;
use keyfold_types::permissions::{
    AssignmentResponse, CreateAssignmentBody, CreatePermissionBody, PermissionResponse,
    UpdatePermissionBody,
};

use crate::authz::{Granted, is_known_operation, op};
use crate::error::{DomainError, Result, StoreError};
use crate::ids::{IdKind, looks_like, new_id};
use crate::model::{Assignment, Permission, TokenKind};
use crate::page::{Page, PageRequest};
use crate::ports::Store;
use crate::time::Clock;
use crate::validate;

/// Most operations one permission may list (Keyfold knows fewer than this).
pub const MAX_OPERATIONS: usize = 200;

#[derive(Debug, Clone)]
pub struct PermissionService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("permission {id} not found"))
}

/// Validated, de-duplicated operation names, in the order given.
fn operations(ops: &[String]) -> Result<Vec<String>> {
    if ops.is_empty() {
        return Err(DomainError::invalid(
            "operations must name at least one operation",
        ));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(DomainError::invalid(format!(
            "operations may name at most {MAX_OPERATIONS} operations"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for o in ops {
        if !is_known_operation(o) {
            return Err(DomainError::invalid(format!(
                "unknown operation {o:?} (see the Dfns list of permissions; Keyfold implements a subset)"
            )));
        }
        if seen.insert(o.clone()) {
            out.push(o.clone());
        }
    }
    Ok(out)
}

/// Nobody hands out more than they hold: assigning a permission, or widening one, needs
/// every operation it grants (otherwise `Permissions:Assign` alone would be a path to
/// administrator).
pub fn within_callers_reach(caller: &crate::authz::Principal, ops: &[String]) -> Result<()> {
    let missing: Vec<&str> = ops
        .iter()
        .filter(|o| !caller.can(o))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DomainError::PermissionDenied(format!(
            "you cannot grant operations you do not hold yourself: {}",
            missing.join(", ")
        )))
    }
}

pub fn permission_response(p: &Permission) -> PermissionResponse {
    PermissionResponse {
        id: p.id.clone(),
        name: p.name.clone(),
        operations: p.operations.clone(),
        status: "Active".into(),
        is_immutable: p.is_immutable,
        is_archived: p.is_archived,
        date_created: p.created_at.to_iso(),
        date_updated: p.updated_at.to_iso(),
    }
}

pub fn assignment_response(a: &Assignment) -> AssignmentResponse {
    AssignmentResponse {
        id: a.id.clone(),
        permission_id: a.permission_id.clone(),
        identity_id: a.identity_id.clone(),
        is_immutable: a.is_immutable,
        date_created: a.created_at.to_iso(),
        date_updated: a.updated_at.to_iso(),
    }
}

impl PermissionService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub async fn create(
        &self,
        g: &Granted<op::PermissionsCreate>,
        body: CreatePermissionBody,
    ) -> Result<PermissionResponse> {
        let name = validate::required_text("name", &body.name, limits::NAME_MAX)?;
        let ops = operations(&body.operations)?;
        let now = self.clock.now();
        let p = Permission {
            id: new_id(IdKind::Permission),
            org_id: g.org_id().to_string(),
            name,
            operations: ops,
            is_immutable: false,
            is_archived: false,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_permission(&p).await?;
        Ok(permission_response(&p))
    }

    pub async fn list(
        &self,
        g: &Granted<op::PermissionsRead>,
        limit: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<PermissionResponse>> {
        let page = PageRequest::parse(limit, token)?;
        Ok(self
            .store
            .list_permissions(g.org_id(), &page)
            .await?
            .map(|p| permission_response(&p)))
    }

    pub async fn get(
        &self,
        g: &Granted<op::PermissionsRead>,
        id: &str,
    ) -> Result<PermissionResponse> {
        Ok(permission_response(&self.permission(g.org_id(), id).await?))
    }

    pub async fn update(
        &self,
        g: &Granted<op::PermissionsUpdate>,
        id: &str,
        body: UpdatePermissionBody,
    ) -> Result<PermissionResponse> {
        let mut p = self.mutable(g.org_id(), id).await?;
        if let Some(n) = &body.name {
            p.name = validate::required_text("name", n, limits::NAME_MAX)?;
        }
        if let Some(ops) = &body.operations {
            let ops = operations(ops)?;
            let added: Vec<String> = ops
                .iter()
                .filter(|o| !p.operations.contains(o))
                .cloned()
                .collect();
            within_callers_reach(g.principal(), &added)?;
            p.operations = ops;
        }
        if p.is_archived {
            return Err(DomainError::invalid(
                "an archived permission cannot be changed (restore it first)",
            ));
        }
        p.updated_at = self.clock.now();
        self.save(&p).await
    }

    pub async fn archive(
        &self,
        g: &Granted<op::PermissionsArchive>,
        id: &str,
        archived: bool,
    ) -> Result<PermissionResponse> {
        let mut p = self.mutable(g.org_id(), id).await?;
        if !archived {
            // Restoring puts the operations back in force.
            within_callers_reach(g.principal(), &p.operations)?;
        }
        p.is_archived = archived;
        p.updated_at = self.clock.now();
        self.save(&p).await
    }

    pub async fn assign(
        &self,
        g: &Granted<op::PermissionsAssign>,
        permission_id: &str,
        body: CreateAssignmentBody,
    ) -> Result<AssignmentResponse> {
        let p = self.permission(g.org_id(), permission_id).await?;
        if p.is_archived {
            return Err(DomainError::invalid(
                "an archived permission cannot be assigned",
            ));
        }
        within_callers_reach(g.principal(), &p.operations)?;
        // The identity must be one of this organization's: an id from another organization
        // is unknown here.
        let identity = body.identity_id.trim();
        let found = if looks_like(IdKind::Token, identity) {
            // A personal access token: never more than its user holds (it would not get the
            // surplus anyway — a PAT's operations are its user's intersected with its own —
            // but a grant that cannot take effect is refused rather than stored).
            match self
                .store
                .get_token(g.org_id(), identity)
                .await?
                .filter(|t| t.kind == TokenKind::Pat && t.revoked_at.is_none())
            {
                None => false,
                Some(t) => {
                    let held: std::collections::HashSet<String> = self
                        .store
                        .assignments_of(std::slice::from_ref(&t.user_id))
                        .await?
                        .into_iter()
                        .flat_map(|a| a.operations)
                        .collect();
                    let beyond: Vec<&str> = p
                        .operations
                        .iter()
                        .filter(|o| !held.contains(*o))
                        .map(String::as_str)
                        .collect();
                    if !beyond.is_empty() {
                        return Err(DomainError::denied(format!(
                            "a personal access token never holds more than its user, who lacks: {}",
                            beyond.join(", ")
                        )));
                    }
                    true
                }
            }
        } else {
            looks_like(IdKind::User, identity)
                && self
                    .store
                    .get_user(g.org_id(), identity)
                    .await?
                    .is_some_and(|u| !u.is_archived)
        };
        if !found {
            return Err(DomainError::not_found(format!(
                "identity {identity} not found in this organization"
            )));
        }
        let now = self.clock.now();
        let a = Assignment {
            id: new_id(IdKind::Assignment),
            org_id: g.org_id().to_string(),
            permission_id: p.id,
            identity_id: identity.to_string(),
            is_immutable: false,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_assignment(&a).await {
            Ok(()) => Ok(assignment_response(&a)),
            Err(StoreError::Conflict(_)) => Err(DomainError::conflict(
                "the identity already has this permission",
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_assignments(
        &self,
        g: &Granted<op::PermissionsAssignmentsRead>,
        permission_id: &str,
        limit: Option<u32>,
        token: Option<&str>,
    ) -> Result<Page<AssignmentResponse>> {
        let p = self.permission(g.org_id(), permission_id).await?;
        let page = PageRequest::parse(limit, token)?;
        Ok(self
            .store
            .list_assignments(g.org_id(), &p.id, &page)
            .await?
            .map(|a| assignment_response(&a)))
    }

    pub async fn revoke(
        &self,
        g: &Granted<op::PermissionsRevoke>,
        permission_id: &str,
        assignment_id: &str,
    ) -> Result<()> {
        let missing = || DomainError::not_found(format!("assignment {assignment_id} not found"));
        if !looks_like(IdKind::Assignment, assignment_id) {
            return Err(missing());
        }
        let a = self
            .store
            .get_assignment(g.org_id(), assignment_id)
            .await?
            .filter(|a| a.permission_id == permission_id)
            .ok_or_else(missing)?;
        if a.is_immutable {
            return Err(DomainError::invalid(
                "the built-in administrator assignment cannot be revoked",
            ));
        }
        if !self.store.delete_assignment(g.org_id(), &a.id).await? {
            return Err(missing());
        }
        Ok(())
    }

    async fn permission(&self, org_id: &str, id: &str) -> Result<Permission> {
        if !looks_like(IdKind::Permission, id) {
            return Err(not_found(id));
        }
        self.store
            .get_permission(org_id, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    async fn mutable(&self, org_id: &str, id: &str) -> Result<Permission> {
        let p = self.permission(org_id, id).await?;
        if p.is_immutable {
            return Err(DomainError::invalid(
                "the built-in administrator permission cannot be changed",
            ));
        }
        Ok(p)
    }

    async fn save(&self, p: &Permission) -> Result<PermissionResponse> {
        if !self.store.update_permission(p).await? {
            return Err(not_found(&p.id));
        }
        Ok(permission_response(p))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::operations;

    #[test]
    fn operation_names_are_checked_and_deduplicated() {
        let ops = |v: &[&str]| operations(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ops(&["Wallets:Read", "Wallets:Read", "Keys:Read"]).unwrap(),
            vec!["Wallets:Read".to_string(), "Keys:Read".to_string()]
        );
        assert!(ops(&[]).is_err());
        let e = ops(&["Wallets:Read", "Wallets:Fly"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Wallets:Fly"), "{e}");
    }
}
