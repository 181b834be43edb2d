//! Kubernetes resource quantities (`2`, `500m`, `2Gi`, `1e3`), as they appear in
//! quota specs: the syntax check and exact conversion to integer milli-units,
//! so the quota ledger compares and adds them without floating point.

use std::fmt;

use crate::Error;

/// A quantity in thousandths of its unit (millicores for CPU, millibytes for
/// memory), rounded up to the next thousandth as Kubernetes rounds requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i128);

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);

    /// From thousandths of the unit.
    pub const fn from_milli(milli: i128) -> Self {
        Quantity(milli)
    }

    /// From whole units (a count of objects, cores, bytes).
    pub const fn from_units(units: i64) -> Self {
        Quantity(units as i128 * 1000)
    }

    /// The amount in thousandths of the unit.
    pub const fn milli(self) -> i128 {
        self.0
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }

    /// Difference, saturating at `i128` bounds.
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0))
    }

    /// Parses a Kubernetes quantity string. O(len).
    ///
    /// ```
    /// use kf_tenancy::Quantity;
    /// assert_eq!(Quantity::parse("500m")?.milli(), 500);
    /// assert_eq!(Quantity::parse("2Gi")?, Quantity::from_units(2 << 30));
    /// assert_eq!(Quantity::parse("1.5")?.milli(), 1500);
    /// assert!(Quantity::parse("2 GB").is_err());
    /// # Ok::<(), kf_tenancy::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<Quantity, Error> {
        let bad = || Error::Invalid {
            path: "quantity".into(),
            message: format!("expected a quantity such as \"2\", \"500m\" or \"2Gi\", found {s:?}"),
        };
        if !is_quantity(s) {
            return Err(bad());
        }
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        // value = digits × 10^(-frac.len()), then scaled by the suffix and by 1000 (milli)
        let digits: String = [int, frac].concat();
        let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| bad())? };
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
            exp => (0, exp[1..].parse::<i32>().map_err(|_| bad())?),
        };
        let exp10 = decimal_exp + 3 - frac.len() as i32;
        let scaled = mantissa.checked_mul(1i128 << binary_shift).ok_or_else(bad)?;
        let milli = if exp10 >= 0 {
            10i128.checked_pow(exp10 as u32).and_then(|p| scaled.checked_mul(p)).ok_or_else(bad)?
        } else {
            // round up: a request of 1n CPU still needs a millicore
            match 10i128.checked_pow(exp10.unsigned_abs()) {
                Some(p) => scaled.checked_add(p - 1).ok_or_else(bad)? / p,
                None => i128::from(scaled > 0),
            }
        };
        Ok(Quantity(if negative { -milli } else { milli }))
    }
}

impl fmt::Display for Quantity {
    /// Whole units when exact (`2`), thousandths otherwise (`1500m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 { write!(f, "{}", self.0 / 1000) } else { write!(f, "{}m", self.0) }
    }
}

/// Whether `s` is a Kubernetes quantity in canonical grammar:
/// `[+-]number[suffix]` where `number` is `d`, `d.d`, `d.` or `.d`, and the
/// suffix is a binary SI suffix (`Ki`…`Ei`), a decimal SI suffix (`n`, `u`,
/// `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`).
///
/// Runs in O(len).
///
/// ```
/// use kf_tenancy::is_quantity;
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
    fn parses_fractions_exponents_and_rounds_up_below_a_milli() {
        assert_eq!(Quantity::parse("0.5").unwrap().milli(), 500);
        assert_eq!(Quantity::parse(".25k").unwrap().milli(), 250_000);
        assert_eq!(Quantity::parse("1e3").unwrap().milli(), 1_000_000);
        assert_eq!(Quantity::parse("1E-2").unwrap().milli(), 10);
        assert_eq!(Quantity::parse("1n").unwrap().milli(), 1);
        assert_eq!(Quantity::parse("-2").unwrap().milli(), -2000);
        assert_eq!(Quantity::parse("1.5Gi").unwrap(), Quantity::from_units(3 << 29));
        assert!(Quantity::parse("9e99").is_err(), "overflow is an error, not a wrap");
        assert_eq!(Quantity::from_units(2).to_string(), "2");
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
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
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn whole_numbers_parse_exactly_in_every_unit(n in 0i64..1_000_000, suffix_index in 0usize..5) {
            let (suffix, factor) = [("", 1000i128), ("k", 1_000_000), ("Ki", 1024 * 1000), ("Mi", (1 << 20) * 1000), ("m", 1)][suffix_index];
            prop_assert_eq!(Quantity::parse(&format!("{n}{suffix}")).unwrap().milli(), i128::from(n) * factor);
        }

        #[test]
        fn parsing_preserves_order(a in 0u32..100_000, b in 0u32..100_000) {
            let qa = Quantity::parse(&format!("{a}m")).unwrap();
            let qb = Quantity::parse(&format!("{}.{:03}", b / 1000, b % 1000)).unwrap();
            prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
        }
    }
}
