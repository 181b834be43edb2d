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
