-- One row per avatar session. LiveKit tokens and API secrets are never stored here.
CREATE TABLE tasks (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id        TEXT    NOT NULL UNIQUE,
    room_name      TEXT    NOT NULL,
    identity       TEXT    NOT NULL,          -- the avatar's LiveKit identity (token `sub`)
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    created_at     TEXT    NOT NULL,          -- RFC 3339 UTC, second precision
    started_at     TEXT,                      -- first published frame
    completed_at   TEXT,
    error          TEXT,                      -- human sentence for failed tasks
    end_reason     TEXT,                      -- short code: agent_left, stopped, idle, ...
    model          TEXT,
    mode           TEXT,
    prompt         TEXT,
    avatar_id      TEXT,
    first_frame_ms INTEGER,                   -- launch -> first published frame
    worker_pid     INTEGER,
    worker_start   INTEGER                    -- /proc/<pid>/stat start time, guards against PID reuse
);

CREATE INDEX tasks_active ON tasks (status) WHERE status IN ('pending', 'running');
CREATE INDEX tasks_room_identity ON tasks (room_name, identity);
CREATE INDEX tasks_completed ON tasks (completed_at) WHERE completed_at IS NOT NULL;
