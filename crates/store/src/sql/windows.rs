//! The `maintenance_windows` table: [`WindowStore`]. Admission reads the windows itself, in
//! its own transaction (`admission.rs`).

use async_trait::async_trait;
use scanplane_core::maintenance::MaintenanceWindow;
use scanplane_core::Timestamp;

use super::SqlStore;
use crate::rows::{dur_ms, ms, window_start_columns, WindowRow, WINDOW_COLUMNS};
use crate::{StoreError, WindowStore};

/// `$1`–`$10` as [`bind_window!`] binds them; `$11` is `admin`, which never changes.
const INSERT_WINDOW: &str = "INSERT INTO maintenance_windows (id, tenant_id, name,
       start_at, cron_exp, timezone, duration_ms, scope, action, created_at, updated_at, admin)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)";

const UPDATE_WINDOW: &str = "UPDATE maintenance_windows SET name = $3,
       start_at = $4, cron_exp = $5, timezone = $6, duration_ms = $7, scope = $8, action = $9,
       updated_at = $10
     WHERE id = $1 AND tenant_id = $2";

const DELETE_WINDOW: &str = "DELETE FROM maintenance_windows
     WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)";

/// Binds a window's definition as `$1`–`$10` (`$10` is the time of the write).
macro_rules! bind_window {
    ($query:expr, $w:expr, $at:expr) => {{
        let (start_at, cron, tz) = window_start_columns(&$w.start);
        $query
            .bind(&$w.id)
            .bind(&$w.tenant_id)
            .bind(&$w.name)
            .bind(start_at)
            .bind(cron)
            .bind(tz)
            .bind(dur_ms(Some($w.duration)))
            .bind($w.scope.to_string())
            .bind($w.action.as_str())
            .bind(ms($at))
    }};
}

#[async_trait]
impl WindowStore for SqlStore {
    async fn create_window(&self, w: &MaintenanceWindow) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            bind_window!(sqlx::query(INSERT_WINDOW), w, w.created_at)
                .bind(w.admin)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn window(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<MaintenanceWindow>, StoreError> {
        let sql = format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<WindowRow> = self.by_id(&sql, id, tenant).await?;
        row.map(WindowRow::into_domain).transpose()
    }

    async fn list_windows(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        let sql = format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows
             WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY id"
        );
        let rows: Vec<WindowRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(tenant).fetch_all(p).await?
        });
        rows.into_iter().map(WindowRow::into_domain).collect()
    }

    async fn update_window(&self, w: &MaintenanceWindow, now: Timestamp) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let n = bind_window!(sqlx::query(UPDATE_WINDOW), w, now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    async fn delete_window(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        self.delete_by_id(DELETE_WINDOW, id, tenant).await
    }
}
