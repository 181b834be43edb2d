//! Kubernetes resource quantities (`500m`, `4Gi`, `1e3`, `2`), parsed to a
//! number so launch policies can count CPUs and GPUs. Parsing only: quantities
//! are written back exactly as they were read.

/// Parses a Kubernetes quantity into its value in base units (`"500m"` →
/// 0.5, `"2Ki"` → 2048). `None` if it is not a quantity. O(len).
///
/// ```
/// use kf_train::parse_quantity;
/// assert_eq!(parse_quantity("500m"), Some(0.5));
/// assert_eq!(parse_quantity("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
/// assert_eq!(parse_quantity("two"), None);
/// ```
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "+" || number == "-" || number.matches('.').count() > 1 {
        return None;
    }
    if number[1..].contains(['+', '-']) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        // Divide for sub-unit suffixes: `516137m` must read as exactly 516.137.
        "n" => return Some(value / 1e9),
        "u" => return Some(value / 1e6),
        "m" => return Some(value / 1e3),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            10f64.powi(e)
        }
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("8Gi"), Some(8.0 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("100M"), Some(1e8));
        assert_eq!(parse_quantity(""), None);
        assert_eq!(parse_quantity("Gi"), None);
        assert_eq!(parse_quantity("1-2"), None);
        assert_eq!(parse_quantity("1.2.3"), None);
        assert_eq!(parse_quantity("3X"), None);
    }

    proptest! {
        #[test]
        fn integers_parse_to_themselves(n in 0u32..1_000_000) {
            prop_assert_eq!(parse_quantity(&n.to_string()), Some(f64::from(n)));
            prop_assert_eq!(parse_quantity(&format!("{n}m")), Some(f64::from(n) / 1000.0));
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse_quantity(&s);
        }
    }
}
