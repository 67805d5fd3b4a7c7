//! The `schedules` table: [`ScheduleStore`] (definitions) and [`TickStore`] (due schedules
//! and ticks). A tick advances its schedule by compare-and-set on `next_tick` and creates its
//! scan in the same transaction; the unique `(schedule_id, fire_time)` of `scans` makes a
//! tick fire at most once across replicas.

use async_trait::async_trait;
use scanplane_core::schedule::{Schedule, TickPlan};
use scanplane_core::Timestamp;

use super::scans::{bind_new_scan, insert_scan_sql};
use super::{new_id, unique_as_conflict, SqlStore};
use crate::rows::{
    cadence_columns, dur_ms, every_ms, json_list, ms, opt_ms, opt_ts, ScanRow, ScheduleRow,
    SCHEDULE_COLUMNS,
};
use crate::{NewScan, ScheduleStore, StoreError, TickOutcome, TickStore};

fn schedule_rows(rows: Vec<ScheduleRow>) -> Result<Vec<Schedule>, StoreError> {
    rows.into_iter().map(ScheduleRow::into_domain).collect()
}

pub(super) fn insert_schedule_sql() -> String {
    format!(
        "INSERT INTO schedules ({SCHEDULE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
    )
}

/// `$1`–`$19` as [`bind_schedule!`] binds them, `$20` the time of the edit. The times the
/// scheduler owns (`last_fired_at`) and the creation time are left alone.
pub(super) const UPDATE_SCHEDULE: &str = "UPDATE schedules SET
       project_id = $3, name = $4, cron_exp = $5, timezone = $6, once_at = $7, scanner = $8,
       targets = $9, billing = $10, options = $11, enabled = $12, status = $13,
       missed_tick_policy = $14, starting_deadline_ms = $15, jitter_ms = $16,
       on_maintenance = $17, next_tick = $18, next_fire_at = $19, updated_at = $20,
       every_ms = $21
     WHERE id = $1 AND tenant_id = $2";

/// Binds a schedule's definition as `$1`–`$19`, in the order of [`SCHEDULE_COLUMNS`].
macro_rules! bind_schedule {
    ($query:expr, $s:expr) => {{
        let (cron, tz, once) = cadence_columns(&$s.cadence);
        $query
            .bind(&$s.id)
            .bind(&$s.tenant_id)
            .bind(&$s.project_id)
            .bind(&$s.name)
            .bind(cron)
            .bind(tz)
            .bind(once)
            .bind(&$s.scanner)
            .bind(json_list(&$s.targets))
            .bind($s.billing)
            .bind(&$s.options)
            .bind($s.enabled)
            .bind($s.status.as_str())
            .bind($s.missed_tick_policy.as_str())
            .bind(dur_ms($s.starting_deadline))
            .bind(dur_ms($s.jitter))
            .bind($s.on_maintenance.as_str())
            .bind(opt_ms($s.next_tick))
            .bind(opt_ms($s.next_fire_at))
    }};
}
pub(super) use bind_schedule;

pub(super) const DELETE_SCHEDULE: &str = "DELETE FROM schedules
     WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)";

const NEXT_FIRE_AT: &str = "SELECT MIN(next_fire_at) FROM schedules";

/// The compare-and-set that claims a tick: only the schedule as it was read advances.
const ADVANCE: &str = "UPDATE schedules SET
       next_tick = $1, next_fire_at = $2, status = $3,
       last_fired_at = COALESCE($4, last_fired_at), updated_at = $5
     WHERE id = $6 AND next_tick = $7";

/// The conflict of a schedule whose name its tenant already uses (ids are fresh UUIDs, so
/// the name is the unique key a write can collide on).
fn duplicate_name(name: &str) -> String {
    format!("name: this tenant already has a schedule named {name:?}; schedule names are unique within a tenant")
}

#[async_trait]
impl ScheduleStore for SqlStore {
    async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        let sql = insert_schedule_sql();
        in_tx!(self, |tx| {
            bind_schedule!(sqlx::query(&sql), s)
                .bind(opt_ms(s.last_fired_at))
                .bind(ms(s.created_at))
                .bind(ms(s.updated_at))
                .bind(every_ms(&s.cadence))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| duplicate_name(&s.name)))?;
            Ok(())
        })
    }

    async fn schedule(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Schedule>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules
             WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
        );
        let row: Option<ScheduleRow> = self.by_id(&sql, id, tenant).await?;
        row.map(ScheduleRow::into_domain).transpose()
    }

    async fn list_schedules(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules
             WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR id > $2)
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<ScheduleRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(tenant)
                .bind(after)
                .bind(i64::from(limit.max(1)))
                .fetch_all(p)
                .await?
        });
        schedule_rows(rows)
    }

    async fn update_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let affected = bind_schedule!(sqlx::query(UPDATE_SCHEDULE), s)
                .bind(ms(s.updated_at))
                .bind(every_ms(&s.cadence))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict(|| duplicate_name(&s.name)))?
                .rows_affected();
            if affected == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    async fn delete_schedule(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        self.delete_by_id(DELETE_SCHEDULE, id, tenant).await
    }
}

#[async_trait]
impl TickStore for SqlStore {
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules
             WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2"
        );
        let rows: Vec<ScheduleRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?
        });
        schedule_rows(rows)
    }

    async fn next_fire_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let v: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar(NEXT_FIRE_AT).fetch_one(p).await?
        });
        opt_ts(v)
    }

    async fn record_tick(
        &self,
        s: &Schedule,
        plan: &TickPlan,
        scan: Option<NewScan>,
        now: Timestamp,
    ) -> Result<TickOutcome, StoreError> {
        let Some(expected) = s.next_tick else {
            return Ok(TickOutcome::AlreadyHandled);
        };
        let insert_sql = insert_scan_sql("ON CONFLICT (schedule_id, fire_time) DO NOTHING");
        let fired_at = plan.fire.map(|_| ms(now));
        let scan_id = new_id();
        in_tx!(self, |tx| {
            let advanced = sqlx::query(ADVANCE)
                .bind(opt_ms(plan.next_tick))
                .bind(opt_ms(plan.next_fire_at))
                .bind(plan.status.as_str())
                .bind(fired_at)
                .bind(ms(now))
                .bind(&s.id)
                .bind(ms(expected))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if advanced == 0 {
                return Ok(TickOutcome::AlreadyHandled);
            }
            let Some(scan) = &scan else {
                return Ok(TickOutcome::Recorded { scan: None });
            };
            let row: Option<ScanRow> =
                bind_new_scan!(sqlx::query_as(&insert_sql), &scan_id, scan, now)
                    .fetch_optional(&mut *tx)
                    .await?;
            match row {
                Some(r) => Ok(TickOutcome::Recorded {
                    scan: Some(Box::new(r.into_domain()?)),
                }),
                None => Ok(TickOutcome::Recorded { scan: None }),
            }
        })
    }
}
