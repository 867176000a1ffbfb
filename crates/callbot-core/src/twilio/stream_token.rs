//! Signed, short-lived stream tokens: `/voice` hands one to Twilio in a TwiML `<Parameter>`, and
//! the stream service accepts a media stream only with a valid one for the same bot and call.
//!
//! Format: `v1.<bot id>.<call sid>.<expiry unix seconds>.<nonce>.<hex HMAC-SHA256>`; the HMAC key
//! is derived from the Twilio auth token (both services already hold it), the MAC covers everything
//! before it. The random nonce makes every token distinct (a `/voice` retried within the same
//! second gets a new one), so each can be stored and consumed once (see `TicketPurpose::Stream`).

use crate::domain::{BotId, CallSid};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How long Twilio has to open the stream after `/voice` answered.
pub const TOKEN_TTL_SECS: i64 = 120;

/// The claims of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClaims {
    pub bot: BotId,
    pub call: CallSid,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("stream token is malformed")]
    Malformed,
    #[error("stream token signature is wrong")]
    BadSignature,
    #[error("stream token has expired")]
    Expired,
}

fn mac(auth_token: &[u8], payload: &str) -> HmacSha256 {
    let mut key = HmacSha256::new_from_slice(auth_token).unwrap_or_else(|_| unreachable!());
    key.update(b"callbot-stream-token-v1");
    let derived = key.finalize().into_bytes();
    let mut m = HmacSha256::new_from_slice(&derived).unwrap_or_else(|_| unreachable!());
    m.update(payload.as_bytes());
    m
}

pub fn issue(auth_token: &[u8], bot: &BotId, call: &CallSid, now_unix: i64) -> String {
    let nonce = crate::apikey::random_token("", 16);
    let payload = format!("v1.{bot}.{call}.{}.{nonce}", now_unix + TOKEN_TTL_SECS);
    let sig = hex::encode(mac(auth_token, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

pub fn verify(auth_token: &[u8], token: &str, now_unix: i64) -> Result<StreamClaims, TokenError> {
    let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = payload.split('.');
    let (Some("v1"), Some(bot), Some(call), Some(exp), Some(nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::Malformed);
    }
    // Lowercase hex only: one token has exactly one spelling (it is stored and consumed by hash).
    if !sig
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(TokenError::Malformed);
    }
    let sig = hex::decode(sig).map_err(|_| TokenError::Malformed)?;
    let expected = mac(auth_token, payload).finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(&sig)) {
        return Err(TokenError::BadSignature);
    }
    let expires_at: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    if now_unix > expires_at {
        return Err(TokenError::Expired);
    }
    Ok(StreamClaims {
        bot: BotId::parse(bot).map_err(|_| TokenError::Malformed)?,
        call: CallSid::parse(call).map_err(|_| TokenError::Malformed)?,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_expire_and_tamper() {
        let (bot, call) = (BotId::generate(), CallSid::generate());
        let t = issue(b"secret", &bot, &call, 1000);
        let claims = verify(b"secret", &t, 1000).unwrap();
        assert_eq!((claims.bot, claims.call), (bot.clone(), call.clone()));
        assert_eq!(
            verify(b"secret", &t, 1000 + TOKEN_TTL_SECS + 1),
            Err(TokenError::Expired)
        );
        assert_eq!(verify(b"other", &t, 1000), Err(TokenError::BadSignature));
        let other_bot = t.replace(bot.as_str(), BotId::generate().as_str());
        assert_eq!(
            verify(b"secret", &other_bot, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(b"secret", "v1.x", 1000), Err(TokenError::Malformed));
        assert_ne!(
            t,
            issue(b"secret", &bot, &call, 1000),
            "every token is distinct"
        );
        assert_eq!(verify(b"secret", "", 1000), Err(TokenError::Malformed));
    }
}
