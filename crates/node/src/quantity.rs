//! Kubernetes resource quantities (`64Mi`, `1G`, `500m`) as numbers.

/// Bytes in a memory quantity such as `64Mi`, `1G` or `134217728`; `None` if malformed.
pub fn bytes(quantity: &str) -> Option<u64> {
    value(quantity).map(|v| v.ceil() as u64)
}

/// Thousandths of a core in a CPU quantity such as `100m`, `0.5` or `2`; `None` if malformed.
pub fn millicores(quantity: &str) -> Option<u64> {
    value(quantity).map(|v| (v * 1000.0).ceil() as u64)
}

/// A quantity's value with its suffix applied.
fn value(quantity: &str) -> Option<f64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "m" => 1e-3,
        _ => return None,
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_quantities() {
        assert_eq!(super::bytes("64Mi"), Some(64 << 20));
        assert_eq!(super::bytes("1G"), Some(1_000_000_000));
        assert_eq!(super::bytes("1.5Ki"), Some(1536));
        assert_eq!(super::bytes("128974848"), Some(128_974_848));
        assert_eq!(super::bytes("12 apples"), None);
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(super::millicores("100m"), Some(100));
        assert_eq!(super::millicores("0.5"), Some(500));
        assert_eq!(super::millicores("2"), Some(2000));
        assert_eq!(super::millicores("one"), None);
    }
}
