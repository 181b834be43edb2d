//! Kubernetes resource quantities (`2`, `500m`, `2Gi`, `1e3`), as they appear in
//! container `resources`. This module only recognises the syntax; it never
//! normalises (`0.1` stays `0.1`, it is not rewritten to `100m`).
//!
//! kf-tenancy has the same function: the copy is deliberate, crates never depend
//! on each other (docs/ARCHITECTURE.md, rule 1).

/// Whether `s` is a Kubernetes quantity in canonical grammar:
/// `[+-]number[suffix]` where `number` is `d`, `d.d`, `d.` or `.d`, and the
/// suffix is a binary SI suffix (`Ki`…`Ei`), a decimal SI suffix (`n`, `u`,
/// `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
///
/// Runs in O(len).
///
/// ```
/// use kf_serve::is_quantity;
/// assert!(is_quantity("2Gi"));
/// assert!(is_quantity("500m"));
/// assert!(is_quantity("1.5e3"));
/// assert!(!is_quantity("2 GB"));
/// assert!(!is_quantity(""));
/// ```
pub fn is_quantity(s: &str) -> bool {
    let rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    let Some(rest) = strip_number(rest) else {
        return false;
    };
    matches!(rest, "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E")
        || rest
            .strip_prefix(['e', 'E'])
            .map(|exp| {
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
            .unwrap_or(false)
}

/// The value of a quantity in thousandths of its unit (`1` → 1000, `500m`
/// → 500, `1Ki` → 1 024 000), rounded up to a thousandth as Kubernetes
/// rounds; `None` when `s` is not a quantity or overflows. The server writes
/// quantities back canonical (`1000m` → `1`), so a controller compares them
/// by value. O(len).
#[cfg_attr(not(feature = "controller"), allow(dead_code))]
pub(crate) fn milli_units(s: &str) -> Option<i128> {
    if !is_quantity(s) {
        return None;
    }
    let (negative, rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = [int, frac].concat();
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let (binary_shift, decimal_exp): (u32, i32) = match suffix {
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
        exp => (0, exp.get(1..)?.parse::<i32>().ok()?),
    };
    let exp10 = decimal_exp.checked_add(3)?.checked_sub(i32::try_from(frac.len()).ok()?)?;
    let scaled = mantissa.checked_mul(1i128 << binary_shift)?;
    let milli = if exp10 >= 0 {
        scaled.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?
    } else {
        match 10i128.checked_pow(exp10.unsigned_abs()) {
            Some(p) => scaled.checked_add(p - 1)? / p,
            None => i128::from(scaled > 0),
        }
    };
    Some(if negative { -milli } else { milli })
}

/// Strips a `d`, `d.d`, `d.` or `.d` number from the front of `s`, returning the
/// rest, or `None` when `s` does not start with a number.
fn strip_number(s: &str) -> Option<&str> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let after_int = &s[int_len..];
    let (frac_len, after) = match after_int.strip_prefix('.') {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            (n, &frac[n..])
        }
        None => (0, after_int),
    };
    (int_len + frac_len > 0).then_some(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_forms_kubernetes_documents() {
        for q in ["1", "0.5", ".5", "5.", "-1", "+2", "100m", "2Gi", "1e3", "1E-2", "3n", "4u", "10k"] {
            assert!(is_quantity(q), "{q} should be a quantity");
        }
    }

    #[test]
    fn canonical_forms_have_the_same_value() {
        assert_eq!(milli_units("1"), Some(1000));
        assert_eq!(milli_units("1000m"), milli_units("1"));
        assert_eq!(milli_units("1Gi"), milli_units("1024Mi"));
        assert_eq!(milli_units("1.5"), Some(1500));
        assert_eq!(milli_units("1e3"), milli_units("1k"));
        assert_eq!(milli_units("2 GB"), None);
    }

    #[test]
    fn rejects_malformed_quantities() {
        for q in ["", ".", "+", "Gi", "2 Gi", "2GB", "2gi", "1e", "1e+", "1.2.3", "--1", "0x10", "2Kib"] {
            assert!(!is_quantity(q), "{q} should not be a quantity");
        }
    }

    proptest! {
        #[test]
        fn generated_quantities_are_accepted(
            sign in prop::sample::select(vec!["", "+", "-"]),
            int in "[0-9]{1,6}",
            frac in prop::option::of("[0-9]{0,4}"),
            suffix in prop::sample::select(vec!["", "Ki", "Mi", "Gi", "m", "k", "M", "e3", "E-2"]),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let q = format!("{sign}{int}{frac}{suffix}");
            prop_assert!(is_quantity(&q), "{} rejected", q);
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,12}") {
            let _ = is_quantity(&s);
        }
    }
}
