//! Kubernetes `resource.Quantity` strings (`128Mi`, `1G`, `500k`, `1e3`, `0.5`)
//! turned into a whole number of units (bytes, for sizes).
//!
//! Grammar (apimachinery/pkg/api/resource/quantity.go):
//! `<signedNumber><suffix>`, the number being digits with at most one `.`, the
//! suffix one of the binary SI suffixes `Ki Mi Gi Ti Pi Ei`, the decimal SI
//! suffixes `n u m "" k M G T P E`, or a decimal exponent `e<signed int>` /
//! `E<signed int>`. Like `Quantity.Value()`, a fractional result rounds up.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(pub String);

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuantityError {}

/// Parses a quantity into a whole, non-negative number of units, rounding up.
pub fn parse_quantity(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 0)
}

/// The same in thousandths (`Quantity.MilliValue()`: CPU in millicores),
/// rounding up.
pub fn parse_quantity_milli(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 3)
}

/// The quantity times 10^`extra`, rounded up.
fn parse_scaled(text: &str, extra: i32) -> Result<u64, QuantityError> {
    let bad = |why: &str| {
        QuantityError(format!(
            "{text:?} is not a valid quantity ({why}); write e.g. 128Mi, 1Gi, 500M or 1000"
        ))
    };
    let s = text;
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => {
            if f.contains('.') {
                return Err(bad("more than one decimal point"));
            }
            (i, f)
        }
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad("no digits"));
    }
    // multiplier = 2^bin_exp * 10^dec_exp
    let (bin_exp, dec_exp): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(|| bad(&format!("unknown suffix {suffix:?}")))?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("unknown suffix {suffix:?}")));
            }
            let e: i32 = exp.parse().map_err(|_| bad("exponent out of range"))?;
            (0, e)
        }
    };
    let too_large = || bad("too large");
    // value = digits / 10^frac_len * 2^bin_exp * 10^dec_exp
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut numerator: u128 = 0;
    for b in digits.bytes() {
        numerator = numerator
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    if numerator == 0 {
        return Ok(0);
    }
    if negative {
        return Err(bad("negative"));
    }
    numerator = numerator
        .checked_mul(1u128 << bin_exp)
        .ok_or_else(too_large)?;
    let scale = dec_exp + extra - frac_part.len() as i32;
    let pow10 = |e: i32| -> Option<u128> { 10u128.checked_pow(e.unsigned_abs()) };
    let value = if scale >= 0 {
        numerator
            .checked_mul(pow10(scale).ok_or_else(too_large)?)
            .ok_or_else(too_large)?
    } else {
        match pow10(scale) {
            Some(den) => numerator.div_ceil(den),
            None => 1, // a positive number divided by more than 10^38 rounds up to 1
        }
    };
    u64::try_from(value).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values_round_up() {
        for (text, want) in [
            ("1", 1000),
            ("500m", 500),
            ("0.1", 100),
            ("1.0001", 1001),
            ("2k", 2_000_000),
            ("1u", 1),
        ] {
            assert_eq!(parse_quantity_milli(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn valid() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("1", 1),
            ("+5", 5),
            ("1000", 1000),
            ("128Mi", 128 << 20),
            ("1Ki", 1024),
            ("1Gi", 1 << 30),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1k", 1000),
            ("500k", 500_000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("15e-1", 2),
            ("1.5Gi", 3 << 29),
            ("0.5", 1),
            (".5Ki", 512),
            ("5.", 5),
            ("100m", 1),
            ("1000m", 1),
            ("1001m", 2),
            ("1n", 1),
            ("1u", 1),
            ("0Mi", 0),
            ("-0", 0),
            ("0.000", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_quantity(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn invalid() {
        for text in [
            "",
            "Mi",
            ".",
            "1..2",
            "1.2.3",
            "-1",
            "-1Mi",
            "1K",
            "1mi",
            "1MB",
            "1 Mi",
            "1e",
            "1e+",
            "1ex",
            "abc",
            "1Zi",
            "1e30",
            "16Ei",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(parse_quantity(text).is_err(), "{text:?} should be invalid");
        }
    }

    #[test]
    fn message_names_value_and_example() {
        let err = parse_quantity("12XB").unwrap_err().to_string();
        assert!(err.contains("\"12XB\""), "{err}");
        assert!(err.contains("128Mi"), "{err}");
    }
}
