-- A schedule's name is unique within its tenant, as a cron job's is within its crontab or
-- namespace: names are how people refer to schedules, and two "nightly" schedules are a
-- mistake more often than a wish. Names already duplicated keep their first holder (the
-- oldest id); the others get their id appended, so that nothing is lost.
UPDATE schedules SET name = name || ' (' || id || ')'
WHERE EXISTS (
    SELECT 1 FROM schedules older
    WHERE older.tenant_id = schedules.tenant_id AND older.name = schedules.name
      AND older.id < schedules.id
);
CREATE UNIQUE INDEX schedules_tenant_name ON schedules (tenant_id, name);
