//! Timestamps as the API shows them (RFC 3339, UTC, millisecond precision) and the UTC day key used
//! by per-day quotas.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time truncated to milliseconds, so it survives a store round trip unchanged.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap_or(t)
}

/// Fixed width (`2026-11-23T09:05:01.020Z`), so the text sorts like the time it names.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// `YYYY-MM-DD` of the UTC day containing `t`.
pub fn day_key(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_day() {
        let t = now();
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        let whole = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(rfc3339(whole), "2023-11-14T22:13:20.000Z");
        assert_eq!(parse_rfc3339(&rfc3339(whole)), Some(whole));
        let fixed = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(day_key(fixed), "2023-11-14");
    }
}
