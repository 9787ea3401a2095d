-- Worker processes this supervisor started and has not reaped yet. After a crash of the supervisor, the rows
-- left here name the orphans to end at the next start-up; the start time (field 22 of /proc/<pid>/stat)
-- guarantees a reused PID is never killed.
CREATE TABLE workers (
    pid        INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    socket     TEXT    NOT NULL,
    task_id    TEXT,
    spawned_at TEXT    NOT NULL,
    PRIMARY KEY (pid, start_time)
);
