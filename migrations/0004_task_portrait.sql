-- sha256 (hex) of the portrait a task was launched with (of its URL when it came by URL, else of its bytes);
-- NULL for the shipped default. A repeated launch for a
-- room with a live session is a replay (answered with that session) only when it names the same portrait.
ALTER TABLE tasks ADD COLUMN portrait_sha256 TEXT;
