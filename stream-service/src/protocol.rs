//! Twilio Media Streams messages (spec §1): what Twilio sends us, parsed leniently — numeric
//! fields arrive as strings, unknown events and fields are ignored — and what we send back.

use serde::Deserialize;
use std::collections::HashMap;

/// One message from Twilio.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    Connected {
        #[serde(default)]
        protocol: Option<String>,
        #[serde(default)]
        version: Option<String>,
    },
    Start {
        #[serde(rename = "sequenceNumber", default)]
        sequence_number: Option<String>,
        #[serde(rename = "streamSid")]
        stream_sid: String,
        start: Start,
    },
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        media: Media,
    },
    Dtmf {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        dtmf: Dtmf,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        mark: MarkBody,
    },
    Stop {
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
    /// Any event this version does not know (forward compatibility).
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Start {
    #[serde(rename = "callSid")]
    pub call_sid: String,
    #[serde(rename = "accountSid", default)]
    pub account_sid: Option<String>,
    #[serde(rename = "customParameters", default)]
    pub custom_parameters: HashMap<String, String>,
    #[serde(rename = "mediaFormat", default)]
    pub media_format: Option<MediaFormat>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MediaFormat {
    pub encoding: String,
    #[serde(rename = "sampleRate")]
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub track: Option<String>,
    #[serde(default)]
    pub chunk: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Base64 of raw μ-law bytes.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarkBody {
    pub name: String,
}

/// Parses one text frame. Malformed frames are errors for the caller to count and report.
pub fn parse(text: &str) -> Result<Inbound, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_sequence() {
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1",
            "start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1","tracks":["inbound"],
            "customParameters":{"token":"t"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        match parse(start).unwrap() {
            Inbound::Start {
                start, stream_sid, ..
            } => {
                assert_eq!(stream_sid, "MZ1");
                assert_eq!(start.call_sid, "CA1");
                assert_eq!(start.custom_parameters["token"], "t");
                assert_eq!(start.media_format.unwrap().sample_rate, 8000);
            }
            other => panic!("{other:?}"),
        }
        let media = r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"21","payload":"/3+AAA=="},"extra":1}"#;
        assert!(matches!(parse(media).unwrap(), Inbound::Media { .. }));
        assert_eq!(
            parse(r#"{"event":"future-thing","x":1}"#).unwrap(),
            Inbound::Unknown
        );
        assert!(matches!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap(),
            Inbound::Connected { .. }
        ));
        assert!(parse(r#"{"event":"media","streamSid":"MZ1"}"#).is_err());
        assert!(parse("not json").is_err());
    }
}
