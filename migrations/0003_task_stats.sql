-- A session's figures (frames, pacing, latencies, CPU and memory of its worker), as JSON, written when it ends.
ALTER TABLE tasks ADD COLUMN stats TEXT;
