//! Timestamps in RFC 3339 (UTC), for image configs, logs and pod status.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-29T01:02:03Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (date, secs_of_day, _) = split(t);
    format!("{date}T{}Z", clock(secs_of_day))
}

/// `2026-11-29T01:02:03.123456789Z`, as CRI log lines carry.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let (date, secs_of_day, nanos) = split(t);
    format!("{date}T{}.{nanos:09}Z", clock(secs_of_day))
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

fn clock(s: i64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn split(t: SystemTime) -> (String, i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        rem,
        d.subsec_nanos(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 5);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_nanos(t), "2024-02-29T23:59:59.000000005Z");
    }
}
