//! A bot's time zone (an IANA name such as `Europe/Paris`), from the time zone database built
//! into the binary, so every machine reads a name the same way.

use super::ParseError;

/// An IANA time zone, `UTC` by default.
#[derive(Debug, Clone)]
pub struct Timezone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let name = raw.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(ParseError::new(
                "invalid_timezone",
                "timezone must be an IANA time zone name such as \"America/New_York\"",
            ));
        }
        let zone = jiff::tz::db().get(name).map_err(|_| {
            ParseError::new(
                "invalid_timezone",
                format!("timezone: {name:?} is not an IANA time zone name (e.g. \"America/New_York\", \"Europe/Paris\", \"UTC\")"),
            )
        })?;
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }

    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }

    /// True for the default zone (nothing to store).
    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }
}

impl Default for Timezone {
    fn default() -> Self {
        Self::utc()
    }
}

impl PartialEq for Timezone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Timezone {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_built_in_database() {
        assert_eq!(
            Timezone::parse("Europe/Paris").unwrap().as_str(),
            "Europe/Paris"
        );
        assert_eq!(Timezone::parse(" UTC ").unwrap(), Timezone::utc());
        assert_eq!(
            Timezone::parse("Mars/Olympus").unwrap_err().code,
            "invalid_timezone"
        );
        assert_eq!(Timezone::parse("").unwrap_err().code, "invalid_timezone");
    }
}
