//! Kubernetes resource quantities (`128Mi`, `1G`, `500m`, `0.5`, `1e3`) as numbers, for the cgroup
//! limits the process runtime applies (pure).

/// A quantity in thousandths (so `500m` = 500 and `1` = 1000), rounded up. `None` when malformed.
pub fn parse_milli(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (mut numerator, mut denominator) = decimal(number)?;
    // Multiply by the suffix, keeping an exact fraction numerator/denominator.
    let (mul, div): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().ok()?;
            if exp >= 0 {
                (10u128.checked_pow(exp as u32)?, 1)
            } else {
                // unsigned_abs: `-exp` overflows for i32::MIN (`1e-2147483648`).
                (1, 10u128.checked_pow(exp.unsigned_abs())?)
            }
        }
        _ => return None,
    };
    numerator = numerator.checked_mul(mul)?.checked_mul(1000)?;
    denominator = denominator.checked_mul(div)?;
    Some(numerator.div_ceil(denominator))
}

/// Whole units, rounded up (memory bytes).
pub fn parse_whole(text: &str) -> Option<u128> {
    parse_milli(text).map(|m| m.div_ceil(1000))
}

fn decimal(number: &str) -> Option<(u128, u128)> {
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number.starts_with('-') {
        return None;
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, 10u128.checked_pow(frac.len() as u32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_whole("128Mi"), Some(128 << 20));
        assert_eq!(parse_whole("1G"), Some(1_000_000_000));
        assert_eq!(parse_whole("1e3"), Some(1000));
        assert_eq!(parse_whole("0.5Gi"), Some(1 << 29));
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("0.25"), Some(250));
        assert_eq!(parse_milli("1.0005"), Some(1001), "rounds up");
        assert_eq!(parse_milli("12x"), None);
        assert_eq!(parse_milli("-1"), None);
        assert_eq!(parse_milli(""), None);
    }
}
