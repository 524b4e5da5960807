//! The permission port: permissions (roles) and their assignments to identities. Every write
//! ends cached sessions (SQLite), so a change counts on the very next request.

use async_trait::async_trait;
use keyfold_domain::model::{Assignment, Permission};
use keyfold_domain::page::{Cursor, Page, PageRequest};
use keyfold_domain::ports::{PermissionStore, StoreResult};
use keyfold_domain::time::Timestamp;

use crate::keys_sql::{after, paged};
use crate::sql::{map_err, ops_from_json, ops_to_json};
use crate::{SqlStore, on_read, on_write};

const PERM_COLS: &str =
    "id, org_id, name, operations, is_immutable, is_archived, created_at, updated_at";
const ASSIGN_COLS: &str =
    "id, org_id, permission_id, identity_id, is_immutable, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct PermRow {
    id: String,
    org_id: String,
    name: String,
    operations: String,
    is_immutable: bool,
    is_archived: bool,
    created_at: i64,
    updated_at: i64,
}

impl PermRow {
    fn into_model(self) -> StoreResult<Permission> {
        Ok(Permission {
            operations: ops_from_json(&self.operations)?,
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            is_immutable: self.is_immutable,
            is_archived: self.is_archived,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct AssignRow {
    id: String,
    org_id: String,
    permission_id: String,
    identity_id: String,
    is_immutable: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<AssignRow> for Assignment {
    fn from(r: AssignRow) -> Self {
        Assignment {
            id: r.id,
            org_id: r.org_id,
            permission_id: r.permission_id,
            identity_id: r.identity_id,
            is_immutable: r.is_immutable,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

#[async_trait]
impl PermissionStore for SqlStore {
    async fn insert_permission(&self, p: &Permission) -> StoreResult<()> {
        let ops = ops_to_json(&p.operations)?;
        on_write!(self, |db| {
            sqlx::query(&format!(
                "INSERT INTO permissions ({PERM_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&p.id)
            .bind(&p.org_id)
            .bind(&p.name)
            .bind(&ops)
            .bind(p.is_immutable)
            .bind(p.is_archived)
            .bind(p.created_at.0)
            .bind(p.updated_at.0)
            .execute(db)
            .await
            .map(|_| ())
        })
        .map_err(map_err)
    }

    async fn get_permission(&self, org_id: &str, id: &str) -> StoreResult<Option<Permission>> {
        let sql = format!("SELECT {PERM_COLS} FROM permissions WHERE org_id = $1 AND id = $2");
        let row: Option<PermRow> = on_read!(self, |db| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(db)
            .await)
        .map_err(map_err)?;
        row.map(PermRow::into_model).transpose()
    }

    async fn list_permissions(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Permission>> {
        let (ts, id) = after(page);
        let sql = format!(
            "SELECT {PERM_COLS} FROM permissions WHERE org_id = $1 \
             AND (created_at < $2 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let rows: Vec<PermRow> = on_read!(self, |db| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(ts)
            .bind(ts)
            .bind(&id)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(db)
            .await)
        .map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(PermRow::into_model)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |p| Cursor {
            created_at: p.created_at,
            id: p.id.clone(),
        }))
    }

    async fn update_permission(&self, p: &Permission) -> StoreResult<bool> {
        let ops = ops_to_json(&p.operations)?;
        let n = on_write!(self, |db| {
            sqlx::query(
                "UPDATE permissions SET name = $1, operations = $2, is_archived = $3, \
                 updated_at = $4 WHERE org_id = $5 AND id = $6 AND NOT is_immutable",
            )
            .bind(&p.name)
            .bind(&ops)
            .bind(p.is_archived)
            .bind(p.updated_at.0)
            .bind(&p.org_id)
            .bind(&p.id)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(n == 1)
    }

    async fn insert_assignment(&self, a: &Assignment) -> StoreResult<()> {
        on_write!(self, |db| {
            sqlx::query(&format!(
                "INSERT INTO permission_assignments ({ASSIGN_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(&a.id)
            .bind(&a.org_id)
            .bind(&a.permission_id)
            .bind(&a.identity_id)
            .bind(a.is_immutable)
            .bind(a.created_at.0)
            .bind(a.updated_at.0)
            .execute(db)
            .await
            .map(|_| ())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(())
    }

    async fn get_assignment(&self, org_id: &str, id: &str) -> StoreResult<Option<Assignment>> {
        let sql = format!(
            "SELECT {ASSIGN_COLS} FROM permission_assignments WHERE org_id = $1 AND id = $2"
        );
        let row: Option<AssignRow> = on_read!(self, |db| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(db)
            .await)
        .map_err(map_err)?;
        Ok(row.map(Assignment::from))
    }

    async fn list_assignments(
        &self,
        org_id: &str,
        permission_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Assignment>> {
        let (ts, id) = after(page);
        let sql = format!(
            "SELECT {ASSIGN_COLS} FROM permission_assignments WHERE org_id = $1 \
             AND permission_id = $2 AND (created_at < $3 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let rows: Vec<AssignRow> = on_read!(self, |db| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(permission_id)
            .bind(ts)
            .bind(ts)
            .bind(&id)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(db)
            .await)
        .map_err(map_err)?;
        Ok(paged(
            rows.into_iter().map(Assignment::from).collect(),
            page.limit,
            |a| Cursor {
                created_at: a.created_at,
                id: a.id.clone(),
            },
        ))
    }

    async fn delete_assignment(&self, org_id: &str, id: &str) -> StoreResult<bool> {
        let n = on_write!(self, |db| {
            sqlx::query(
                "DELETE FROM permission_assignments WHERE org_id = $1 AND id = $2 \
                 AND NOT is_immutable",
            )
            .bind(org_id)
            .bind(id)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        self.sessions_changed();
        Ok(n == 1)
    }
}
