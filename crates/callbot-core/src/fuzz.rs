//! Property-based fuzzing of the parsers here that take outside input: Twilio signatures over
//! form bodies, stream tokens, webhook signatures, phone numbers and webhook URLs. Each property
//! runs `PROPTEST_CASES` cases (256 by default; `scripts/fuzz.sh` runs many more): no input makes
//! a parser panic, what we produce parses back, and any change to signed data is refused.

use crate::domain::{BotId, CallSid, PhoneNumber, WebhookPolicy, WebhookUrl};
use crate::twilio::{signature, stream_token};
use crate::webhook_sign;
use proptest::prelude::*;

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((".{0,12}", ".{0,24}"), 0..8)
}

proptest! {
    #[test]
    fn twilio_signatures_never_panic_and_only_match_what_was_signed(
        token in ".{1,40}",
        url in "https?://[a-z.]{1,20}(:[0-9]{1,5})?/[ -~]{0,30}",
        params in params(),
        header in ".{0,40}",
        extra in (".{1,8}", ".{0,8}"),
    ) {
        let _ = signature::verify_form(token.as_bytes(), &url, &params, &header);
        let _ = signature::verify_json(token.as_bytes(), &url, header.as_bytes(), &header);
        // A form body as Twilio sends it, parsed back as our handlers parse it.
        let body = serde_urlencoded::to_string(&params).unwrap_or_default();
        let parsed: Vec<(String, String)> = serde_urlencoded::from_bytes(body.as_bytes()).unwrap_or_default();
        prop_assert_eq!(&parsed, &params);
        let sig = signature::compute(token.as_bytes(), &url, &parsed);
        prop_assert!(signature::verify_form(token.as_bytes(), &url, &parsed, &sig));
        let mut more = parsed.clone();
        more.push(extra);
        prop_assert!(!signature::verify_form(token.as_bytes(), &url, &more, &sig));
    }

    #[test]
    fn form_bodies_of_any_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body);
    }

    #[test]
    fn stream_tokens_never_panic_and_cannot_be_altered(
        garbage in ".{0,120}",
        now in 0i64..4_000_000_000,
        at in 0usize..200,
        with in "[a-zA-Z0-9._]",
    ) {
        let _ = stream_token::verify(b"secret", &garbage, now);
        let (bot, call) = (BotId::generate(), CallSid::generate());
        let token = stream_token::issue(b"secret", &bot, &call, now);
        let claims = stream_token::verify(b"secret", &token, now).unwrap();
        prop_assert_eq!((&claims.bot, &claims.call), (&bot, &call));
        let i = at % token.len();
        let mut altered = token.clone();
        altered.replace_range(i..=i, &with);
        if altered != token {
            prop_assert!(stream_token::verify(b"secret", &altered, now).is_err(), "{}", altered);
        }
    }

    #[test]
    fn webhook_signatures_never_panic_and_bind_the_body(
        secret in proptest::collection::vec(any::<u8>(), 1..40),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        header in ".{0,100}",
        t in 0u64..4_000_000_000,
        flip in any::<prop::sample::Index>(),
    ) {
        let _ = webhook_sign::verify(&secret, &header, &body, t, 300);
        let h = webhook_sign::sign(&secret, t, &body);
        prop_assert!(webhook_sign::verify(&secret, &h, &body, t, 300).is_ok());
        if !body.is_empty() {
            let mut other = body.clone();
            let i = flip.index(other.len());
            other[i] ^= 1;
            prop_assert!(webhook_sign::verify(&secret, &h, &other, t, 300).is_err());
        }
    }

    #[test]
    fn numbers_and_webhook_urls_never_panic(raw in ".{0,300}") {
        let _ = PhoneNumber::parse(&raw);
        for allow_private in [false, true] {
            let _ = WebhookUrl::parse(&raw, WebhookPolicy { allow_private });
        }
    }
}
