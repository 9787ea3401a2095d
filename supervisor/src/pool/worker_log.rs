//! A worker's log lines in the supervisor's log: one line per event, one timestamp, every field once.
//!
//! Workers log in the supervisor's own `LOG_FORMAT` (it is passed to them), so a worker's line is already a
//! finished log line: it is written through as it is, with the worker's `pid` and the `task_id` it serves
//! added when the line does not carry them yet. Output that is not a log line (a panic message, a library
//! printing to stderr) becomes a supervisor event of target `lipcast::worker` instead, so even that stays one
//! line in the log's format.

use std::io::Write;

use serde_json::Value;

use crate::config::LogFormat;

/// The target of worker output that was not one of its log lines.
const RAW_TARGET: &str = "lipcast::worker";

/// Writes one line a worker printed into the supervisor's log.
pub fn forward(format: LogFormat, pid: u32, task_id: Option<&str>, line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let finished = match format {
        LogFormat::Json => json_line(pid, task_id, line),
        LogFormat::Text => text_line(pid, task_id, line),
    };
    match finished {
        Some(out) => {
            // One write under stderr's lock: tracing writes its own lines the same way, so lines never mix.
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(out.as_bytes());
        }
        None => {
            let task_id = task_id.unwrap_or("-");
            tracing::warn!(target: RAW_TARGET, pid, task_id, "{line}");
        }
    }
}

/// A worker's JSON log line with `pid` and `task_id` added where missing; `None` if it is not one.
fn json_line(pid: u32, task_id: Option<&str>, line: &str) -> Option<String> {
    let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    if !(event.contains_key("timestamp") && event.contains_key("level")) {
        return None;
    }
    event.entry("pid").or_insert(Value::from(pid));
    let in_span = event.get("span").and_then(|s| s.get("task_id")).is_some();
    if let Some(task_id) = task_id
        && !in_span
    {
        event
            .entry("task_id")
            .or_insert(Value::from(task_id.to_owned()));
    }
    let mut out = serde_json::to_string(&Value::Object(event)).ok()?;
    out.push('\n');
    Some(out)
}

/// A worker's text log line (`<timestamp> <LEVEL> <target>: <message> <fields>`) with `pid=` and `task_id=`
/// appended where missing; `None` if it is not one.
fn text_line(pid: u32, task_id: Option<&str>, line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let timestamp = words.next()?;
    let level = words.next()?;
    let is_log_line = timestamp.len() >= 20
        && timestamp.as_bytes().get(4) == Some(&b'-')
        && timestamp.ends_with('Z')
        && matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE");
    if !is_log_line {
        return None;
    }
    // A field is there as a word of its own, or first in a span's braces (`session{task_id=…`).
    let has = |field: &str| {
        line.split_whitespace().any(|w| {
            w.starts_with(field)
                || w.split_once('{')
                    .is_some_and(|(_, inner)| inner.starts_with(field))
        })
    };
    let mut out = line.to_owned();
    if !has("pid=") {
        out.push_str(&format!(" pid={pid}"));
    }
    if let Some(task_id) = task_id
        && !has("task_id=")
    {
        out.push_str(&format!(" task_id={task_id}"));
    }
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_get_missing_fields_once() {
        let line = "2026-12-03T09:50:00.123456Z  INFO lipcast_worker::control: lipcast-worker listening socket=/s pid=7";
        let out = text_line(7, None, line).expect("a log line");
        assert_eq!(out.matches("pid=").count(), 1);
        assert!(!out.contains("task_id"));
        let line = "2026-12-03T09:50:00.123456Z  INFO session{task_id=abc room=r}: lipcast_worker::session: joined";
        let out = text_line(7, Some("abc"), line).expect("a log line");
        assert_eq!(out.matches("task_id=").count(), 1);
        assert!(out.trim_end().ends_with("pid=7"));
        let out = text_line(7, Some("abc"), "2026-12-03T09:50:00Z  WARN x: y").expect("a log line");
        assert!(out.trim_end().ends_with("pid=7 task_id=abc"));
    }

    #[test]
    fn other_output_is_not_taken_for_a_log_line() {
        assert!(text_line(1, None, "thread 'main' panicked at src/x.rs:1:1:").is_none());
        assert!(json_line(1, None, "thread 'main' panicked").is_none());
        assert!(json_line(1, None, "{\"a\":1}").is_none());
    }

    #[test]
    fn json_lines_stay_one_object_with_each_field_once() {
        let line = r#"{"timestamp":"2026-12-03T09:50:00Z","level":"INFO","message":"listening","pid":7,"target":"lipcast_worker"}"#;
        let out: Value =
            serde_json::from_str(&json_line(7, Some("abc"), line).expect("a log line"))
                .expect("JSON");
        assert_eq!(out["pid"], 7);
        assert_eq!(out["task_id"], "abc");
        let line = r#"{"timestamp":"t","level":"INFO","message":"m","span":{"task_id":"abc","name":"session"}}"#;
        let out: Value =
            serde_json::from_str(&json_line(9, Some("abc"), line).expect("a log line"))
                .expect("JSON");
        assert!(out.get("task_id").is_none());
        assert_eq!(out["pid"], 9);
    }
}
