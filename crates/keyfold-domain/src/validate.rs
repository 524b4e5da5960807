//! Input rules shared by the use cases. Each returns a 400-class error naming the field.

use keyfold_types::limits;

use crate::error::{DomainError, Result};

/// A pragmatic email check: one `@`, a non-empty local part, a dotted domain, no spaces or
/// control characters, within RFC 5321's 254 octets. Deliverability is proven by the
/// registration code, not by a regex.
pub fn email(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(format!("{field} is required")));
    }
    if v.len() > limits::EMAIL_MAX {
        return Err(DomainError::invalid(format!(
            "{field} is longer than {} characters",
            limits::EMAIL_MAX
        )));
    }
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && v.chars().all(|c| !c.is_whitespace() && !c.is_control())
        }
        None => false,
    };
    if !ok {
        return Err(DomainError::invalid(format!(
            "{field} is not a valid email address"
        )));
    }
    Ok(v.to_ascii_lowercase())
}

/// A bounded, non-control string.
pub fn text(field: &str, value: &str, max: usize) -> Result<String> {
    if value.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(DomainError::invalid(format!(
            "{field} contains control characters"
        )));
    }
    Ok(value.to_string())
}

/// A bounded, non-empty, non-control string.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(format!("{field} is required")));
    }
    text(field, value, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Ann@Example.COM "),
            Ok("ann@example.com".into())
        );
        for bad in [
            "", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@.c", "a@b..c",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
        assert!(email("email", &format!("{}@b.co", "a".repeat(300))).is_err());
    }

    #[test]
    fn texts() {
        assert!(text("name", "ok", 3).is_ok());
        assert!(text("name", "toolong", 3).is_err());
        assert!(text("name", "a\u{0}", 3).is_err());
        assert!(required_text("name", "  ", 3).is_err());
    }
}
