//! Kafka's topic name rules.

pub const MAX_NAME_LEN: usize = 249;

/// The broker's own topics, made by the broker when first needed, never by a client.
pub const INTERNAL: &[&str] = &[crate::group::OFFSETS_TOPIC];

/// Checks a topic name as Kafka does: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Names that differ only by `.` versus `_` collide in metric names, so Kafka refuses the second.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate("MyFirstKafkaTopic").is_ok());
        assert!(validate("a.b_c-D9").is_ok());
        assert!(validate("").is_err());
        assert!(validate(".").is_err());
        assert!(validate("..").is_err());
        assert!(validate("a b").is_err());
        assert!(validate(&"x".repeat(249)).is_ok());
        assert!(validate(&"x".repeat(250)).is_err());
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
