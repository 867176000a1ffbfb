//! The media stream's messages as Twilio writes them (`media` from the caller, built without a
//! JSON tree per 20 ms frame) and as Twilio checks what the application sends (exact fields,
//! the right stream, valid base64).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;

/// A number Twilio writes as a JSON string (`"sequenceNumber": "3"`), formatted in place.
struct Num(u64);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaMessage<'a> {
    event: &'static str,
    sequence_number: Num,
    stream_sid: &'a str,
    media: Media<'a>,
}

#[derive(Serialize)]
struct Media<'a> {
    track: &'static str,
    chunk: Num,
    timestamp: Num,
    payload: &'a str,
}

/// The `media` message carrying caller audio frame number `chunk` (20 ms each), as sequence
/// number `seq` of stream `stream_sid`.
pub(crate) fn media_in(seq: u64, stream_sid: &str, chunk: u64, frame: &[u8]) -> String {
    let mut b64 = [0u8; 4 * 256 / 3 + 4];
    let n = B64
        .encode_slice(frame, &mut b64)
        .expect("a 20 ms frame fits the buffer");
    let payload = std::str::from_utf8(&b64[..n]).expect("base64 is ASCII");
    let m = MediaMessage {
        event: "media",
        sequence_number: Num(seq),
        stream_sid,
        media: Media {
            track: "inbound",
            chunk: Num(chunk),
            timestamp: Num(chunk * 20),
            payload,
        },
    };
    serde_json::to_string(&m).expect("plain fields serialise")
}

pub(crate) enum Outbound {
    Media(Vec<u8>),
    Mark(String),
    Clear,
}

/// Checks a server message the way Twilio does: exact fields, right stream sid, valid base64.
pub(crate) fn check_outbound(text: &str, stream_sid: &str) -> Result<Outbound, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let event = obj.get("event").and_then(Value::as_str).ok_or("no event")?;
    if obj.get("streamSid").and_then(Value::as_str) != Some(stream_sid) {
        return Err(format!("{event}: wrong or missing streamSid"));
    }
    let expect_keys = |keys: &[&str]| -> Result<(), String> {
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = keys.to_vec();
        want.sort_unstable();
        if got == want {
            Ok(())
        } else {
            Err(format!("{event}: fields {got:?}, expected {want:?}"))
        }
    };
    match event {
        "media" => {
            expect_keys(&["event", "streamSid", "media"])?;
            let media = obj["media"].as_object().ok_or("media is not an object")?;
            if media.len() != 1 {
                return Err("media must hold only payload".into());
            }
            let payload = media
                .get("payload")
                .and_then(Value::as_str)
                .ok_or("media.payload missing")?;
            B64.decode(payload)
                .map(Outbound::Media)
                .map_err(|e| format!("media.payload is not base64: {e}"))
        }
        "mark" => {
            expect_keys(&["event", "streamSid", "mark"])?;
            let name = obj["mark"]
                .get("name")
                .and_then(Value::as_str)
                .ok_or("mark.name missing")?;
            Ok(Outbound::Mark(name.to_owned()))
        }
        "clear" => {
            expect_keys(&["event", "streamSid"])?;
            Ok(Outbound::Clear)
        }
        other => Err(format!("unknown event {other:?} (Twilio error 31951)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_frame_is_the_media_message_twilio_sends() {
        let m: Value =
            serde_json::from_str(&media_in(7, "MZ1", 3, &[0xFF, 0x7F, 0x80, 0x00])).expect("JSON");
        assert_eq!(
            m,
            serde_json::json!({"event": "media", "sequenceNumber": "7", "streamSid": "MZ1",
                "media": {"track": "inbound", "chunk": "3", "timestamp": "60", "payload": "/3+AAA=="}})
        );
    }

    #[test]
    fn outbound_messages_are_checked_strictly() {
        let ok = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"/3+AAA=="}}"#;
        assert!(
            matches!(check_outbound(ok, "MZ1"), Ok(Outbound::Media(b)) if b == [0xFF, 0x7F, 0x80, 0x00])
        );
        assert!(check_outbound(ok, "MZ2").is_err());
        let extra = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AA=="},"x":1}"#;
        assert!(check_outbound(extra, "MZ1").is_err());
        assert!(check_outbound(r#"{"event":"clear","streamSid":"MZ1"}"#, "MZ1").is_ok());
        assert!(check_outbound(r#"{"event":"dance","streamSid":"MZ1"}"#, "MZ1").is_err());
        assert!(check_outbound("nope", "MZ1").is_err());
    }
}
