//! The end of a turn, event by event: no runtime, one rule per test.

use super::*;
use crate::engine::call::lifecycle::{Reply, Turn};
use crate::engine::turn::Stage;
use callbot_core::domain::PhoneNumber;
use std::time::Duration;

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: time::macros::datetime!(2026-12-03 09:00:00 UTC),
    }
}

fn conv() -> Conversation {
    Conversation::new(Instant::now(), Duration::from_secs(10), "Hello?".into())
}

/// A caller's turn whose words were `said`, answered with two sentences of 10 frames each
/// (a mark after each), every frame sent to the carrier, `action` to follow.
fn answering(said: &str, action: Action) -> Conversation {
    let mut c = conv();
    let mut t = Turn::new(
        3,
        Instant::now(),
        Duration::ZERO,
        Some((None, String::new())),
    );
    t.stage(Stage::Recognising);
    t.recognised(said.into(), Duration::from_millis(80));
    let reply = Reply {
        say: "We open at five. We close at nine.".into(),
        action,
        fallback: None,
    };
    let sentences = vec!["We open at five.".into(), "We close at nine.".into()];
    t.reply(reply, sentences, Some(Duration::from_millis(40)));
    for s in 0..2 {
        t.audio(s, &[0xff; 1600], Duration::from_millis(5), "espeak-ng");
        t.sentence_done(s);
    }
    t.synthesis_finished();
    t.playback.send_all();
    t.playback.start_at(Instant::now());
    c.begin(t);
    c
}

fn events(effects: &[Effect]) -> Vec<&CallEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn record(effects: &[Effect]) -> Option<&TurnRecord> {
    effects.iter().find_map(|e| match e {
        Effect::Persist(r) => Some(r.as_ref()),
        _ => None,
    })
}

#[test]
fn barge_in_keeps_in_the_history_only_the_words_heard_before_the_last_mark() {
    let mut c = answering("when do you open", Action::Continue);
    c.current_mut().unwrap().mark_back(0);
    let effects = c.barge_in(now());
    assert!(matches!(effects[0], Effect::ClearPlayout), "{effects:?}");
    let heard = c.history().last().unwrap();
    assert_eq!(
        (heard.role, heard.content.as_str()),
        ("bot", "We open at five.")
    );
    let r = record(&effects).expect("the turn is stored");
    assert!(r.interrupted);
    assert_eq!(r.bot_text, "We open at five.");
    assert_eq!(r.bot_text_full, "We open at five. We close at nine.");
    assert!(matches!(
        events(&effects)[0],
        CallEvent::Interruption { position: 200, heard_text, .. } if heard_text == "We open at five."
    ));
}

#[test]
fn an_interrupted_reply_does_not_carry_out_its_hang_up() {
    let mut c = answering("goodbye", Action::Hangup);
    c.current_mut().unwrap().mark_back(0);
    let effects = c.barge_in(now());
    assert!(record(&effects).is_some());
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::HangUp)),
        "the caller cut it before hearing the goodbye: {effects:?}"
    );
}

#[test]
fn barge_in_does_nothing_while_the_callers_words_are_still_being_recognised() {
    let mut c = conv();
    let mut t = Turn::new(
        0,
        Instant::now(),
        Duration::ZERO,
        Some((Some(vec![0; 800]), String::new())),
    );
    t.reply(Reply::default(), vec!["One moment.".into()], None);
    t.audio(0, &[0xff; 1600], Duration::from_millis(5), "espeak-ng");
    t.playback.send_all();
    c.begin(t);
    assert!(c.barge_in(now()).is_empty());
    assert!(c.current().is_some(), "the filler goes on");
}

#[test]
fn barge_in_with_no_turn_running_does_nothing() {
    assert!(conv().barge_in(now()).is_empty());
}

#[test]
fn a_reply_heard_in_full_is_stored_and_its_hang_up_carried_out_last() {
    let mut c = answering("thanks, bye", Action::Hangup);
    let effects = c.complete(now(), false);
    assert!(matches!(effects[0], Effect::AbortTurnTask));
    assert!(
        matches!(effects.last(), Some(Effect::HangUp)),
        "{effects:?}"
    );
    let r = record(&effects).unwrap();
    assert_eq!((r.turn, r.user_text.as_str()), (3, "thanks, bye"));
    assert_eq!(r.action, "hangup");
    assert!(!r.interrupted);
    assert_eq!(r.at, "2026-12-03T09:00:00.000Z");
    assert_eq!(r.timings.stt_ms, Some(80));
    let roles: Vec<_> = c.history().iter().map(|h| h.role).collect();
    assert_eq!(roles, ["user", "bot"]);
    assert!(c.current().is_none());
}

#[test]
fn a_transfer_reply_heard_in_full_asks_for_the_transfer() {
    let to = PhoneNumber::parse("+14155550123").unwrap();
    let mut c = answering("an agent please", Action::Transfer(to));
    let effects = c.complete(now(), false);
    assert!(
        matches!(effects.last(), Some(Effect::Transfer(n)) if n == "+14155550123"),
        "{effects:?}"
    );
}

#[test]
fn a_reply_that_played_ends_its_track_with_the_length_sent() {
    let mut c = answering("hi", Action::Continue);
    let effects = c.complete(now(), false);
    assert!(events(&effects).iter().any(|e| matches!(
        e,
        CallEvent::TrackEnd { track_id, duration: 400, .. } if track_id == "reply-3"
    )));
}

#[test]
fn noise_that_recognised_as_nothing_is_not_a_turn() {
    let mut c = answering("", Action::Continue);
    // Nothing recognised and no keys: the reply (none) never played.
    let mut t = Turn::new(
        4,
        Instant::now(),
        Duration::ZERO,
        Some((None, String::new())),
    );
    t.recognised(String::new(), Duration::from_millis(30));
    t.synthesis_finished();
    c.take_current();
    c.begin(t);
    let effects = c.complete(now(), false);
    assert!(record(&effects).is_none(), "{effects:?}");
    assert!(c.history().is_empty());
}

#[test]
fn unrecognisable_speech_answered_with_a_fallback_is_a_turn() {
    let mut c = conv();
    let mut t = Turn::new(
        0,
        Instant::now(),
        Duration::ZERO,
        Some((None, String::new())),
    );
    t.recognised(String::new(), Duration::from_millis(30));
    let reply = Reply {
        say: "Sorry, I did not catch that.".into(),
        action: Action::Continue,
        fallback: Some(Fallback::SttFailed),
    };
    t.reply(reply, vec!["Sorry, I did not catch that.".into()], None);
    c.begin(t);
    let effects = c.complete(now(), false);
    let r = record(&effects).expect("stored with its fallback");
    assert_eq!(
        r.fallback.as_deref(),
        Some(Fallback::SttFailed.code().as_str())
    );
}

#[test]
fn completing_with_no_turn_running_does_nothing() {
    assert!(conv().complete(now(), false).is_empty());
}
