//! Property-based fuzzing of the parsers here that take outside input: Twilio media-stream
//! messages (the full parser and the borrowing fast path), business webhook answers and `/call`
//! commands. `PROPTEST_CASES` cases per property (256 by default; `scripts/fuzz.sh` runs more):
//! no input panics, well-formed input is understood, and every refusal says why.

use crate::engine::call::media_in_fast::{Fast, fast_media};
use crate::engine::command;
use crate::engine::webhook::{Action, parse_reply};
use crate::protocol::{self, Inbound};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;
use serde_json::{Value, json};

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,10}",
                    Just("command".to_owned()),
                    Just("text".to_owned()),
                    Just("option".to_owned()),
                    Just("event".to_owned()),
                    Just("media".to_owned()),
                    Just("payload".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn command_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("invite".to_owned()),
        Just("tts".to_owned()),
        Just("play".to_owned()),
        Just("interrupt".to_owned()),
        Just("hangup".to_owned()),
        Just("refer".to_owned()),
        Just("mute".to_owned()),
        Just("unmute".to_owned()),
        Just("history".to_owned()),
        Just("candidate".to_owned()),
        Just("accept".to_owned()),
        "[a-z]{0,8}",
    ]
}

proptest! {
    #[test]
    fn media_messages_of_any_shape_never_panic(text in ".{0,400}", v in json_value()) {
        let mut buf = Vec::new();
        for t in [text.clone(), v.to_string()] {
            let _ = protocol::parse(&t);
            let _ = fast_media(&t, &mut buf);
        }
    }

    #[test]
    fn media_messages_are_read_alike_by_both_parsers(
        audio in proptest::collection::vec(any::<u8>(), 0..400),
        extra in json_value(),
    ) {
        let payload = B64.encode(&audio);
        let msg = json!({"event": "media", "sequenceNumber": "3", "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": payload},
            "unknownField": extra});
        let text = msg.to_string();
        let mut buf = Vec::new();
        prop_assert_eq!(fast_media(&text, &mut buf), Fast::Audio);
        prop_assert_eq!(&buf, &audio);
        match protocol::parse(&text) {
            Ok(Inbound::Media { media, .. }) => prop_assert_eq!(media.payload, payload),
            other => prop_assert!(false, "{:?}", other),
        }
        // A payload that is not base64 is reported, not decoded.
        let bad = json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "@@@"}}).to_string();
        prop_assert_eq!(fast_media(&bad, &mut buf), Fast::BadPayload);
    }

    #[test]
    fn webhook_answers_of_any_shape_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        v in json_value(),
    ) {
        let _ = parse_reply(&bytes);
        let _ = parse_reply(v.to_string().as_bytes());
    }

    #[test]
    fn well_formed_webhook_answers_are_understood(
        say in "[ -~]{0,80}",
        number in "\\+1[2-9][0-9]{9}",
        which in 0u8..3,
    ) {
        let (action, want) = match which {
            0 => ("continue", Action::Continue),
            1 => ("hangup", Action::Hangup),
            _ => ("transfer", Action::Transfer(callbot_core::domain::PhoneNumber::parse(&number).unwrap())),
        };
        let body = json!({"say": say, "action": action, "transfer_to": number}).to_string();
        let reply = parse_reply(body.as_bytes()).unwrap();
        prop_assert_eq!(reply.action, want);
        let trimmed = say.trim();
        prop_assert_eq!(reply.say.as_deref(), (!trimmed.is_empty()).then_some(trimmed));
    }

    #[test]
    fn call_commands_of_any_shape_never_panic_and_say_why(
        text in ".{0,300}",
        name in command_name(),
        body in json_value(),
    ) {
        let _ = command::parse(&text);
        let mut obj = match body {
            Value::Object(m) => m,
            other => [("option".to_owned(), other)].into_iter().collect(),
        };
        obj.insert("command".into(), Value::String(name));
        if let Err(e) = command::parse(&Value::Object(obj).to_string()) {
            prop_assert!(!e.message.is_empty());
            prop_assert!(["invalid_json", "unknown_command", "invalid_command", "unsupported_command"].contains(&e.code), "{}", e.code);
        }
    }
}
