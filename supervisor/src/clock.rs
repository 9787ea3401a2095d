//! Timestamps as the API shows them: RFC 3339 in UTC with second precision (`2026-11-22T05:02:55Z`).
//! That fixed shape also sorts correctly as text, which the task store relies on.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::format_description;

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

fn format(t: OffsetDateTime) -> String {
    t.format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

pub fn ago(d: Duration) -> String {
    format(OffsetDateTime::now_utc() - d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape_is_rfc3339_utc_seconds() {
        let s = super::now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        assert!(super::ago(std::time::Duration::from_secs(10)) < s);
    }
}
