//! Who or what answered an outbound call, as answering-machine detection names it (Twilio's
//! `AnsweredBy`, or the engine's own detector on other legs).

use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    Human,
    /// A machine's greeting has started (detection without waiting for its end).
    MachineStart,
    /// The greeting ended with a beep: a message can be left.
    MachineEndBeep,
    MachineEndSilence,
    MachineEndOther,
    Fax,
    Unknown,
}

impl AnsweredBy {
    pub const ALL: [AnsweredBy; 7] = [
        AnsweredBy::Human,
        AnsweredBy::MachineStart,
        AnsweredBy::MachineEndBeep,
        AnsweredBy::MachineEndSilence,
        AnsweredBy::MachineEndOther,
        AnsweredBy::Fax,
        AnsweredBy::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::MachineStart => "machine_start",
            AnsweredBy::MachineEndBeep => "machine_end_beep",
            AnsweredBy::MachineEndSilence => "machine_end_silence",
            AnsweredBy::MachineEndOther => "machine_end_other",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Unknown => "unknown",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == raw)
            .ok_or_else(|| {
                ParseError::new("invalid_answered_by", format!("unknown AnsweredBy {raw:?}"))
            })
    }

    /// A machine (or a fax), whatever the stage of its greeting.
    pub fn is_machine(self) -> bool {
        !matches!(self, AnsweredBy::Human | AnsweredBy::Unknown)
    }

    /// The machine's greeting is over: a message said now is recorded.
    pub fn is_machine_end(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineEndBeep
                | AnsweredBy::MachineEndSilence
                | AnsweredBy::MachineEndOther
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for a in AnsweredBy::ALL {
            assert_eq!(AnsweredBy::parse(a.as_str()).unwrap(), a);
        }
        assert!(AnsweredBy::parse("robot").is_err());
        assert!(AnsweredBy::MachineEndBeep.is_machine_end());
        assert!(AnsweredBy::Fax.is_machine() && !AnsweredBy::Fax.is_machine_end());
        assert!(!AnsweredBy::Unknown.is_machine());
    }
}
