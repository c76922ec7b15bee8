//! When the agent takes scheduled snapshots: a five-field cron expression (minute, hour, day of
//! month, month, day of week), as k3s's and RKE2's `etcd-snapshot-schedule-cron`, evaluated in
//! UTC (no daylight-saving surprises; a node's snapshots line up with the names boot gives them,
//! which are UTC too). `*`, `*/N`, `A`, `A-B`, `A-B/N` and lists of them; `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly`. As in cron, when both day fields are restricted a day
//! matching either runs. Pure.

use std::fmt;
use std::str::FromStr;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a cron schedule: {reason} (e.g. \"0 */12 * * *\": minute, hour, day of month, month, day of week)")]
pub struct ScheduleError {
    pub text: String,
    pub reason: String,
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            text: text.to_string(),
            reason,
        };
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(err(format!("{} fields, not 5", fields.len())));
        };
        let field = |name: &str, text: &str, low: u32, high: u32| {
            parse_field(text, low, high).map_err(|reason| err(format!("{name} {text:?}: {reason}")))
        };
        let mut weekdays = field("day of week", weekday, 0, 7)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            text: text.trim().to_string(),
            minutes: field("minute", minute, 0, 59)?,
            hours: field("hour", hour, 0, 23)?,
            days: field("day of month", day, 1, 31)?,
            months: field("month", month, 1, 12)?,
            weekdays,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The bits of one field: a comma-separated list of `*`, `N`, `A-B`, each with an optional `/STEP`.
fn parse_field(text: &str, low: u32, high: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {step:?} is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let number = |t: &str| {
            t.parse::<u32>()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| format!("{t:?} is not a number from {low} to {high}"))
        };
        let (from, to) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // `N/STEP` runs from N to the end, as in cron.
                None if part.contains('/') => (number(range)?, high),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            },
        };
        if from > to {
            return Err(format!("the range {from}-{to} is backwards"));
        }
        for value in (from..=to).step_by(step as usize) {
            bits |= 1 << value;
        }
    }
    Ok(bits)
}

impl Schedule {
    /// The first minute strictly after `after` (unix seconds) that the schedule names, in unix
    /// seconds; `None` when none comes within eight years (`0 0 30 2 *`).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        use time::{Duration, OffsetDateTime};
        let start = (after.div_euclid(60) + 1) * 60;
        let mut t = OffsetDateTime::from_unix_timestamp(start).ok()?;
        let limit = t + Duration::days(8 * 366);
        while t < limit {
            if !self.has(self.months, u8::from(t.month()).into()) {
                let (year, month) = match t.month() {
                    time::Month::December => (t.year() + 1, time::Month::January),
                    m => (t.year(), m.next()),
                };
                let date = time::Date::from_calendar_date(year, month, 1).ok()?;
                t = date.midnight().assume_utc();
                continue;
            }
            if !self.day_matches(&t) {
                t = (t.date().next_day()?).midnight().assume_utc();
                continue;
            }
            if !self.has(self.hours, t.hour().into()) {
                t = t.replace_minute(0).ok()? + Duration::hours(1);
                continue;
            }
            if !self.has(self.minutes, t.minute().into()) {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t.unix_timestamp());
        }
        None
    }

    fn has(&self, bits: u64, value: u32) -> bool {
        bits & (1 << value) != 0
    }

    fn day_matches(&self, t: &time::OffsetDateTime) -> bool {
        let day = self.has(self.days, t.day().into());
        let weekday = self.has(self.weekdays, t.weekday().number_days_from_sunday().into());
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2026-03-14T10:17:30Z` (a Saturday).
    const NOW: i64 = 1_773_483_450;

    fn next(schedule: &str, after: i64) -> String {
        let s: Schedule = schedule.parse().unwrap();
        crate::pki::format_time(s.next_after(after).expect("a next time"))
    }

    #[test]
    fn next_times_follow_cron() {
        for (schedule, expected) in [
            ("0 */12 * * *", "2026-03-14T12:00:00Z"),
            ("*/5 * * * *", "2026-03-14T10:20:00Z"),
            ("30 2 * * *", "2026-03-15T02:30:00Z"),
            ("@hourly", "2026-03-14T11:00:00Z"),
            ("@daily", "2026-03-15T00:00:00Z"),
            ("@weekly", "2026-03-15T00:00:00Z"),
            ("@monthly", "2026-04-01T00:00:00Z"),
            ("0 0 * * 1-5", "2026-03-16T00:00:00Z"),
            ("0 0 * * 7", "2026-03-15T00:00:00Z"),
            ("0 0 31 * *", "2026-03-31T00:00:00Z"),
            ("0 0 1 1 *", "2027-01-01T00:00:00Z"),
            ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
            // Both day fields restricted: either runs (the 20th, or a Monday before).
            ("0 0 20 * 1", "2026-03-16T00:00:00Z"),
            ("15,45 10 * * *", "2026-03-14T10:45:00Z"),
            ("10-20/5 * * * *", "2026-03-14T10:20:00Z"),
            ("5/20 * * * *", "2026-03-14T10:25:00Z"),
        ] {
            assert_eq!(next(schedule, NOW), expected, "{schedule}");
        }
        // Strictly after: a time on the schedule gives the next one.
        let noon = 1_773_489_600;
        assert_eq!(next("0 */12 * * *", noon), "2026-03-15T00:00:00Z");
    }

    #[test]
    fn an_impossible_date_never_comes() {
        let s: Schedule = "0 0 30 2 *".parse().unwrap();
        assert_eq!(s.next_after(NOW), None);
    }

    #[test]
    fn bad_schedules_name_the_field() {
        for (text, part) in [
            ("0 */12 * *", "4 fields"),
            ("60 * * * *", "minute \"60\""),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("a * * * *", "minute"),
        ] {
            let err = text.parse::<Schedule>().unwrap_err().to_string();
            assert!(err.contains(part), "{text}: {err}");
        }
    }
}
