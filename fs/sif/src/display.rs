//! Text formats siftool uses: Go's UTC time string and human-readable byte sizes.

use crate::consts::GO_ZERO_TIME;

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds formatted like Go's `time.Unix(s, 0).UTC().String()`,
/// e.g. `2020-06-30 00:01:56 +0000 UTC`.
pub fn go_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let year = if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    };
    format!(
        "{year}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// True for Go's zero time, which siftool does not print.
pub fn is_zero_time(secs: i64) -> bool {
    secs == GO_ZERO_TIME
}

/// Byte count the way siftool prints sizes: `N B` under 1 KiB, else rounded to the
/// nearest whole unit (`27 KiB`, `9 MiB`, ...).
pub fn human_size(n: i64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut div: i64 = 1024;
    let mut exp = 0;
    let mut q = n / 1024;
    while q >= 1024 && exp < UNITS.len() - 1 {
        div *= 1024;
        exp += 1;
        q /= 1024;
    }
    let v = n as f64 / div as f64;
    format!("{:.0} {}", v, UNITS[exp])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_match_go() {
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time(1_593_475_316), "2020-06-30 00:01:56 +0000 UTC");
        assert_eq!(go_time(GO_ZERO_TIME), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(go_time(-1), "1969-12-31 23:59:59 +0000 UTC");
        assert_eq!(go_time(4_107_542_399), "2100-02-28 23:59:59 +0000 UTC");
    }

    #[test]
    fn civil_round_trip_every_day_of_four_centuries() {
        let mut prev = civil_from_days(-1);
        for days in 0..146_097 {
            let cur = civil_from_days(days);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
        assert_eq!(civil_from_days(146_097), (2370, 1, 1));
    }

    #[test]
    fn sizes_like_siftool() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(28_080), "27 KiB");
        assert_eq!(human_size(8_784), "9 KiB");
        // Go's %.0f rounds halves to even.
        assert_eq!(human_size(2_560), "2 KiB");
        assert_eq!(human_size(3_584), "4 KiB");
        assert_eq!(human_size(1 << 20), "1 MiB");
        assert_eq!(human_size(790 * 1024 + 100), "790 KiB");
    }
}
