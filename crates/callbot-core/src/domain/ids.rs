//! Identifiers: bot ids (time-ordered, prefixed) and tenant ids (operator-chosen slugs).

use super::ParseError;
use std::fmt;

/// Defines an id type: `prefix` and 32 lowercase hex digits of a UUIDv7 (ids sort by creation
/// time), with `generate`, `parse` (refusing anything else with `code`), `as_str` and `Display`.
#[macro_export]
macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $prefix:literal, $code:literal, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                $name(format!(concat!($prefix, "{}"), uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(raw: &str) -> Result<Self, $crate::domain::ParseError> {
                let ok = raw.strip_prefix($prefix).is_some_and(|hex| {
                    hex.len() == 32
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if ok {
                    Ok($name(raw.to_owned()))
                } else {
                    Err($crate::domain::ParseError::new(
                        $code,
                        concat!($what, " must be \"", $prefix, "\" and 32 lowercase hex digits"),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A bot id: `bot_` followed by 32 lowercase hex digits of a UUIDv7 (so ids sort by creation time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BotId(String);

impl BotId {
    pub fn generate() -> Self {
        BotId(format!("bot_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let hex = raw
            .strip_prefix("bot_")
            .ok_or_else(|| ParseError::new("invalid_bot_id", "bot id must start with \"bot_\""))?;
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParseError::new(
                "invalid_bot_id",
                "bot id must be \"bot_\" and 32 lowercase hex digits",
            ));
        }
        Ok(BotId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant (customer account): 1-64 characters of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok_len && ok_chars {
            Ok(TenantId(raw.to_owned()))
        } else {
            Err(ParseError::new(
                "invalid_tenant",
                "tenant must be 1-64 characters of lowercase letters, digits, '-' or '_'",
            ))
        }
    }

    /// The tenant the development bootstrap key (`CALLBOT_API_KEY`) belongs to.
    pub fn default_tenant() -> Self {
        TenantId("default".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_ids_round_trip_and_sort_by_time() {
        let a = BotId::generate();
        let b = BotId::generate();
        assert_eq!(BotId::parse(a.as_str()).unwrap(), a);
        assert!(a <= b);
    }

    #[test]
    fn bad_bot_ids_are_refused() {
        for raw in [
            "",
            "bot_",
            "bot_XYZ",
            "abc",
            "bot_0123456789abcdef0123456789ABCDEF",
            "bot_../../etc",
        ] {
            assert!(BotId::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn tenants() {
        assert!(TenantId::parse("acme-1").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }
}
