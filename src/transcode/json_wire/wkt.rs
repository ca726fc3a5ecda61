//! The string forms of google.protobuf.Timestamp and Duration, in the canonical shapes the
//! proto3 JSON mapping writes: `1972-01-01T10:00:20.021Z` and `1.000340012s`. Other accepted
//! shapes (offsets, negative durations, lowercase letters) are left to DynamicMessage.

use super::reader::{Fallback, Fast};
use crate::civil_time::days_from_civil;

/// Seconds since the Unix epoch and nanoseconds of a `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` string,
/// for years 0001 to 9999.
pub(super) fn timestamp(text: &str) -> Fast<(i64, i32)> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(Fallback);
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    let hour = digits(&bytes[11..13])?;
    let minute = digits(&bytes[14..16])?;
    let second = digits(&bytes[17..19])?;
    if year == 0
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(Fallback);
    }
    let (nanos, rest) = fraction(&bytes[19..])?;
    if rest != b"Z" {
        return Err(Fallback);
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok((days * 86_400 + i64::from(hour * 3600 + minute * 60 + second), nanos))
}

/// Seconds and nanoseconds of a non-negative `S[.f{1,9}]s` string within the mapping's range
/// of ±315,576,000,000 seconds.
pub(super) fn duration(text: &str) -> Fast<(i64, i32)> {
    let bytes = text.as_bytes();
    let whole = bytes.iter().position(|b| !b.is_ascii_digit()).unwrap_or(bytes.len());
    if whole == 0 || whole > 12 {
        return Err(Fallback);
    }
    let seconds: i64 = text[..whole].parse().map_err(|_| Fallback)?;
    let (nanos, rest) = fraction(&bytes[whole..])?;
    if rest != b"s" || seconds > 315_576_000_000 {
        return Err(Fallback);
    }
    Ok((seconds, nanos))
}

/// An optional `.` and 1 to 9 digits, as nanoseconds, and what follows.
fn fraction(bytes: &[u8]) -> Fast<(i32, &[u8])> {
    let Some(rest) = bytes.strip_prefix(b".") else { return Ok((0, bytes)) };
    let count = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    if count == 0 || count > 9 {
        return Err(Fallback);
    }
    let value = digits(&rest[..count])?;
    Ok(((value * 10u32.pow(9 - count as u32)) as i32, &rest[count..]))
}

fn digits(bytes: &[u8]) -> Fast<u32> {
    bytes.iter().try_fold(0u32, |value, &byte| {
        if byte.is_ascii_digit() { Ok(value * 10 + u32::from(byte - b'0')) } else { Err(Fallback) }
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_timestamps_agree_with_prost_types() {
        let table = [
            "1970-01-01T00:00:00Z",
            "1969-03-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2000-02-29T12:34:56.5Z",
            "2024-12-31T23:59:59.000000001Z",
        ];
        for text in table {
            let theirs: prost_types::Timestamp = text.parse().expect("prost-types reads it");
            assert_eq!(timestamp(text), Ok((theirs.seconds, theirs.nanos)), "{text}");
        }
        for text in [
            "1900-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "10000-01-01T00:00:00Z",
        ] {
            assert_eq!(timestamp(text), Err(Fallback), "{text}");
        }
    }

    #[test]
    fn canonical_durations_agree_with_prost_types() {
        for text in ["0s", "1.5s", "315576000000s", "0.000000001s", "12.340s"] {
            let theirs: prost_types::Duration = text.parse().expect("prost-types reads it");
            assert_eq!(duration(text), Ok((theirs.seconds, theirs.nanos)), "{text}");
        }
        for text in ["-1s", "1", "1.s", "315576000001s", "1.0000000001s", "s", "1 s"] {
            assert_eq!(duration(text), Err(Fallback), "{text}");
        }
    }
}
