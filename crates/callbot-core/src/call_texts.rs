//! What a call says and is told, with its placeholders filled: the goal (or the outbound
//! `prompt`), the context, the greeting and the voicemail message, from the call's variables over the bot's defaults
//! and the built-ins at one moment in the bot's time zone. The API fills them when a call is
//! placed (to refuse a missing value before anyone is dialled); the stream service fills them
//! again when the call starts (so `{{time}}` is the time of the call).

use crate::domain::template::{self, BuiltIns, Missing};
use crate::domain::{CallDirection, FirstMessage, Goal, Variables};
use crate::store::{Bot, CallRecord};
use time::OffsetDateTime;

/// The inputs of one call's texts.
#[derive(Debug, Clone, Copy)]
pub struct CallTexts<'a> {
    pub bot: &'a Bot,
    /// The outbound call's own instructions (`prompt`), if any.
    pub prompt: Option<&'a Goal>,
    /// The outbound call's own greeting, if any.
    pub first_message: Option<&'a FirstMessage>,
    /// The call's own values (the bot's defaults are added under them).
    pub variables: &'a Variables,
    /// The other party: the caller of an inbound call, the number dialled on an outbound one.
    pub other_party: &'a str,
}

/// A call's texts, filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub goal: String,
    pub context: String,
    /// The outbound `prompt`, filled (it replaces the goal for the model).
    pub instructions: Option<String>,
    /// The call's or the bot's first message, filled; `None` when neither has one.
    pub greeting: Option<String>,
    /// The message left on an answering machine, filled (`None`: the bot hangs up on one).
    pub voicemail: Option<String>,
    /// Every value the call's placeholders could use, built-ins included (sent with each turn).
    pub variables: Variables,
}

impl<'a> CallTexts<'a> {
    /// The texts of a stored call of `bot`.
    pub fn of(bot: &'a Bot, call: &'a CallRecord) -> Self {
        let other_party = match call.direction {
            CallDirection::Inbound => call.from.as_str(),
            CallDirection::Outbound => call.to.as_str(),
        };
        Self {
            bot,
            prompt: call.prompt.as_ref(),
            first_message: call.first_message.as_ref(),
            variables: &call.variables,
            other_party,
        }
    }

    fn builtins(&self, now: OffsetDateTime) -> BuiltIns {
        let now = jiff::Timestamp::from_nanosecond(now.unix_timestamp_nanos())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        BuiltIns::at(
            self.other_party,
            self.bot.number.as_str(),
            now,
            &self.bot.options.timezone,
        )
    }

    /// Every text filled by `one` (which fills one text and notes what it could not).
    fn filled(
        &self,
        now: OffsetDateTime,
        mut one: impl FnMut(&str, &Variables, &BuiltIns) -> String,
    ) -> Filled {
        let (vars, builtins) = (
            self.variables.over(&self.bot.options.variables),
            self.builtins(now),
        );
        let mut one = |text: &str| one(text, &vars, &builtins);
        Filled {
            goal: one(self.bot.goal.as_str()),
            context: one(self.bot.context.as_str()),
            instructions: self.prompt.map(|p| one(p.as_str())),
            greeting: self.greeting().map(|g| one(g.as_str())),
            voicemail: self
                .bot
                .options
                .voicemail
                .message()
                .map(|m| one(m.as_str())),
            variables: with_builtins(&vars, &builtins),
        }
    }

    /// Every text filled, or the names that have no value (the call must not be placed).
    pub fn fill(&self, now: OffsetDateTime) -> Result<Filled, Missing> {
        let mut missing: Vec<String> = Vec::new();
        let filled = self.filled(now, |text, vars, builtins| {
            template::fill(text, vars, builtins).unwrap_or_else(|Missing(names)| {
                missing.extend(names);
                String::new()
            })
        });
        if missing.is_empty() {
            return Ok(filled);
        }
        missing.sort();
        missing.dedup();
        Err(Missing(missing))
    }

    /// Every text filled, a placeholder without a value left empty; the names left empty come
    /// back beside the texts (for a call already connected: nobody can be asked any more).
    pub fn fill_or_blank(&self, now: OffsetDateTime) -> (Filled, Vec<String>) {
        let mut blanks: Vec<String> = Vec::new();
        let filled = self.filled(now, |text, vars, builtins| {
            let (s, names) = template::fill_or_blank(text, vars, builtins);
            blanks.extend(names);
            s
        });
        blanks.sort();
        blanks.dedup();
        (filled, blanks)
    }

    fn greeting(&self) -> Option<&'a FirstMessage> {
        self.first_message.or(self.bot.first_message.as_ref())
    }
}

fn with_builtins(vars: &Variables, b: &BuiltIns) -> Variables {
    let mut all = vars.clone();
    for (name, value) in [
        ("caller_number", &b.caller_number),
        ("bot_number", &b.bot_number),
        ("date", &b.date),
        ("time", &b.time),
        ("weekday", &b.weekday),
    ] {
        all.set_builtin(name, value);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BotOptions, Context, Timezone};
    use crate::store::conformance::sample_bot;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Variables {
        Variables::parse(&v, "variables").unwrap()
    }

    fn bot() -> Bot {
        let mut bot = sample_bot(&crate::store::conformance::tenant());
        bot.goal = Goal::parse("Confirm {{name}}'s table for {{party}}").unwrap();
        bot.context = Context::parse("We are {{shop}}. Today is {{weekday}}.").unwrap();
        bot.first_message = Some(FirstMessage::parse("Hi {{name}}, {{shop}} here.").unwrap());
        bot.options = BotOptions {
            timezone: Timezone::parse("Europe/Paris").unwrap(),
            variables: vars(json!({"shop": "Bella Vista", "party": "two"})),
            voicemail: crate::domain::Voicemail::parse(
                &json!({"action": "leave_message", "message": "{{name}}, please call {{shop}}."}),
            )
            .unwrap(),
            analysis: Default::default(),
        };
        bot
    }

    fn texts<'a>(bot: &'a Bot, v: &'a Variables) -> CallTexts<'a> {
        CallTexts {
            bot,
            prompt: None,
            first_message: None,
            variables: v,
            other_party: "+15551230000",
        }
    }

    #[test]
    fn the_calls_values_win_and_the_bots_fill_the_rest() {
        let (bot, v) = (bot(), vars(json!({"name": "Ana", "party": 4})));
        let now = crate::time_fmt::parse_rfc3339("2026-12-03T23:30:00Z").unwrap();
        let f = texts(&bot, &v).fill(now).unwrap();
        assert_eq!(f.goal, "Confirm Ana's table for 4");
        // 23:30 UTC is already Friday in Paris.
        assert_eq!(f.context, "We are Bella Vista. Today is Friday.");
        assert_eq!(f.greeting.as_deref(), Some("Hi Ana, Bella Vista here."));
        assert_eq!(
            f.voicemail.as_deref(),
            Some("Ana, please call Bella Vista.")
        );
        assert_eq!(f.variables.get("caller_number"), Some("+15551230000"));
        assert_eq!(f.variables.get("party"), Some("4"));
    }

    #[test]
    fn a_missing_value_refuses_the_call_naming_it() {
        let (bot, v) = (bot(), Variables::default());
        let e = texts(&bot, &v).fill(crate::time_fmt::now()).unwrap_err();
        assert_eq!(e.0, vec!["name".to_owned()]);
        let (f, blanks) = texts(&bot, &v).fill_or_blank(crate::time_fmt::now());
        assert_eq!(blanks, vec!["name".to_owned()]);
        assert_eq!(f.greeting.as_deref(), Some("Hi , Bella Vista here."));
    }

    #[test]
    fn the_calls_prompt_and_greeting_are_filled_too() {
        let (bot, v) = (bot(), vars(json!({"name": "Ana"})));
        let prompt = Goal::parse("Remind {{name}} of {{appointment}}").unwrap();
        let first = FirstMessage::parse("Hello {{name}}").unwrap();
        let t = CallTexts {
            prompt: Some(&prompt),
            first_message: Some(&first),
            ..texts(&bot, &v)
        };
        assert_eq!(
            t.fill(crate::time_fmt::now()).unwrap_err().0,
            vec!["appointment".to_owned()]
        );
        let v2 = vars(json!({"name": "Ana", "appointment": "your 3 PM cleaning"}));
        let f = CallTexts {
            variables: &v2,
            ..t
        }
        .fill(crate::time_fmt::now())
        .unwrap();
        assert_eq!(
            f.instructions.as_deref(),
            Some("Remind Ana of your 3 PM cleaning")
        );
        assert_eq!(f.greeting.as_deref(), Some("Hello Ana"));
    }
}
