//! A campaign's calling window: the days of the week and the hours of the day (in the bot's time
//! zone) in which its rows may be dialled.

use crate::domain::ParseError;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Days (Monday first) and `[start, end)` in minutes of the local day; `end` may be 24:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingWindow {
    days: [bool; 7],
    start_min: u16,
    end_min: u16,
}

impl Default for CallingWindow {
    /// Every day, 09:00 to 20:00.
    fn default() -> Self {
        Self {
            days: [true; 7],
            start_min: 9 * 60,
            end_min: 20 * 60,
        }
    }
}

fn bad(message: impl Into<String>) -> ParseError {
    ParseError::new("invalid_window", message)
}

/// `HH:MM`, 00:00 to 24:00, in minutes.
fn minutes(raw: &str, field: &str) -> Result<u16, ParseError> {
    let parsed = raw.split_once(':').and_then(|(h, m)| {
        let ok = h.len() == 2 && m.len() == 2;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (ok && m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| {
        bad(format!(
            "window.{field}: {raw:?} is not a time \"HH:MM\" (00:00-24:00)"
        ))
    })
}

fn fmt_minutes(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl CallingWindow {
    /// `{"days": ["mon", …], "start": "09:00", "end": "17:00"}`; each field has the default's
    /// value when left out.
    pub fn parse(raw: &serde_json::Value) -> Result<Self, ParseError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("window must be an object {\"days\", \"start\", \"end\"}"))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "days" | "start" | "end"))
        {
            return Err(bad(format!(
                "window: unknown field {k:?} (days, start, end)"
            )));
        }
        let mut w = Self::default();
        if let Some(days) = obj.get("days") {
            let list = days.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
                bad("window.days must be a non-empty list such as [\"mon\", \"tue\"]")
            })?;
            w.days = [false; 7];
            for d in list {
                let name = d.as_str().unwrap_or_default().to_ascii_lowercase();
                let i = DAYS.iter().position(|(n, _)| *n == name).ok_or_else(|| {
                    bad(format!(
                        "window.days: {d} is not one of mon, tue, wed, thu, fri, sat, sun"
                    ))
                })?;
                w.days[i] = true;
            }
        }
        for (field, slot) in [("start", &mut w.start_min), ("end", &mut w.end_min)] {
            if let Some(v) = obj.get(field) {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad(format!("window.{field} must be \"HH:MM\"")))?;
                *slot = minutes(s, field)?;
            }
        }
        if w.start_min >= w.end_min {
            return Err(bad(format!(
                "window: start ({}) must be before end ({})",
                fmt_minutes(w.start_min),
                fmt_minutes(w.end_min)
            )));
        }
        Ok(w)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|((n, _), _)| *n)
            .collect();
        serde_json::json!({"days": days, "start": fmt_minutes(self.start_min), "end": fmt_minutes(self.end_min)})
    }

    fn day_on(&self, d: Weekday) -> bool {
        self.days[usize::from(d.to_monday_zero_offset().unsigned_abs())]
    }

    fn at(date: Date, min: u16, tz: &TimeZone) -> Option<Timestamp> {
        let local = if min >= 24 * 60 {
            date.tomorrow().ok()?.to_datetime(Time::midnight())
        } else {
            date.at((min / 60) as i8, (min % 60) as i8, 0, 0)
        };
        local
            .to_zoned_datetime(tz.clone())
            .ok()
            .map(|z| z.timestamp())
    }

    /// The first moment at or after `now` (Unix ms) when the window is open; `None` when none
    /// comes within a week (impossible for a parsed window).
    pub fn next_open_ms(&self, now_ms: i64, tz: &TimeZone) -> Option<i64> {
        let now = Timestamp::from_millisecond(now_ms).ok()?;
        let today = now.to_zoned_datetime(tz.clone()).date();
        for offset in 0..=7 {
            let date = today.checked_add(offset.days()).ok()?;
            if !self.day_on(date.weekday()) {
                continue;
            }
            let (Some(open), Some(close)) = (
                Self::at(date, self.start_min, tz),
                Self::at(date, self.end_min, tz),
            ) else {
                continue;
            };
            if now < close {
                return Some(open.max(now).as_millisecond());
            }
        }
        None
    }

    /// True when the window is open at `now_ms`.
    pub fn is_open(&self, now_ms: i64, tz: &TimeZone) -> bool {
        self.next_open_ms(now_ms, tz) == Some(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn weekdays_9_to_17() -> CallingWindow {
        CallingWindow::parse(
            &json!({"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}),
        )
        .unwrap()
    }

    #[test]
    fn open_inside_the_hours_of_a_listed_day_only() {
        let w = weekdays_9_to_17();
        let utc = TimeZone::UTC;
        // 2026-12-03 is a Thursday.
        assert!(w.is_open(ms("2026-12-03T09:00:00Z"), &utc));
        assert!(w.is_open(ms("2026-12-03T16:59:59Z"), &utc));
        assert!(!w.is_open(ms("2026-12-03T17:00:00Z"), &utc));
        assert!(!w.is_open(ms("2026-12-03T08:59:59Z"), &utc));
        assert!(!w.is_open(ms("2026-12-05T12:00:00Z"), &utc), "a Saturday");
    }

    #[test]
    fn the_next_opening_skips_closed_days() {
        let w = weekdays_9_to_17();
        let utc = TimeZone::UTC;
        assert_eq!(
            w.next_open_ms(ms("2026-12-04T18:00:00Z"), &utc),
            Some(ms("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            w.next_open_ms(ms("2026-12-03T07:00:00Z"), &utc),
            Some(ms("2026-12-03T09:00:00Z"))
        );
    }

    #[test]
    fn hours_are_read_in_the_bots_time_zone() {
        let w = weekdays_9_to_17();
        let ny = jiff::tz::db().get("America/New_York").unwrap();
        // 15:00 UTC is 10:00 in New York (EST, UTC-5); 23:00 UTC is 18:00 there.
        assert!(w.is_open(ms("2026-12-03T15:00:00Z"), &ny));
        assert!(!w.is_open(ms("2026-12-03T23:00:00Z"), &ny));
        assert_eq!(
            w.next_open_ms(ms("2026-12-03T23:00:00Z"), &ny),
            Some(ms("2026-12-04T14:00:00Z"))
        );
    }

    #[test]
    fn a_window_to_midnight_and_all_day_are_allowed() {
        let w = CallingWindow::parse(&json!({"start": "00:00", "end": "24:00"})).unwrap();
        assert!(w.is_open(ms("2026-12-03T23:59:59Z"), &TimeZone::UTC));
        assert!(w.is_open(ms("2026-12-06T00:00:00Z"), &TimeZone::UTC));
        assert_eq!(CallingWindow::parse(&w.to_json()).unwrap(), w);
    }

    #[test]
    fn malformed_windows_are_refused_with_the_field() {
        for bad in [
            json!({"days": []}),
            json!({"days": ["monday"]}),
            json!({"start": "9:00"}),
            json!({"start": "18:00", "end": "09:00"}),
            json!({"end": "24:30"}),
            json!({"hours": "9-5"}),
            json!("always"),
        ] {
            let e = CallingWindow::parse(&bad).unwrap_err();
            assert_eq!(e.code, "invalid_window", "{bad}");
        }
    }
}
