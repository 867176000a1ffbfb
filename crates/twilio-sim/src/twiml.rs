//! TwiML parsing as the carrier does it: the verbs callbot uses, read with quick-xml; anything
//! else is an error, so a malformed answer fails the call (and the test) instead of passing.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One parsed verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(String),
    ConnectStream {
        url: String,
        parameters: Vec<(String, String)>,
    },
    Dial {
        number: String,
        caller_id: Option<String>,
    },
    Pause(u32),
    Hangup,
}

fn attr(e: &BytesStart<'_>, name: &str) -> anyhow::Result<Option<String>> {
    for a in e.attributes() {
        let a = a?;
        if a.key.as_ref() == name.as_bytes() {
            return Ok(Some(a.unescape_value()?.into_owned()));
        }
    }
    Ok(None)
}

/// Parses a `<Response>` document.
pub fn parse(xml: &str) -> anyhow::Result<Vec<Verb>> {
    let mut reader = Reader::from_str(xml);
    let mut verbs = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut stream: Option<(String, Vec<(String, String)>)> = None;
    let mut dial_caller: Option<String> = None;
    let mut saw_response = false;
    loop {
        match reader.read_event()? {
            Event::Decl(_) | Event::Comment(_) => {}
            ev @ (Event::Start(_) | Event::Empty(_)) => {
                let empty = matches!(ev, Event::Empty(_));
                let (Event::Start(e) | Event::Empty(e)) = ev else {
                    continue;
                };
                let name = String::from_utf8(e.name().as_ref().to_vec())?;
                let parent = stack.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (None, "Response") => saw_response = true,
                    (Some("Response"), "Say" | "Number") => {}
                    (Some("Response"), "Connect") => {}
                    (Some("Connect"), "Stream") => {
                        let url = attr(&e, "url")?
                            .ok_or_else(|| anyhow::anyhow!("<Stream> without url"))?;
                        stream = Some((url, Vec::new()));
                    }
                    (Some("Stream"), "Parameter") => {
                        let (Some(n), Some(v)) = (attr(&e, "name")?, attr(&e, "value")?) else {
                            anyhow::bail!("<Parameter> needs name and value");
                        };
                        if let Some((_, params)) = stream.as_mut() {
                            params.push((n, v));
                        }
                    }
                    (Some("Response"), "Dial") => dial_caller = attr(&e, "callerId")?,
                    (Some("Dial"), "Number") => {}
                    (Some("Response"), "Hangup") => verbs.push(Verb::Hangup),
                    (Some("Response"), "Pause") => {
                        let len = attr(&e, "length")?.map_or(Ok(1), |l| l.parse())?;
                        verbs.push(Verb::Pause(len));
                    }
                    (p, n) => anyhow::bail!("unexpected <{n}> inside {p:?}"),
                }
                if !empty {
                    stack.push(name);
                    text.clear();
                }
            }
            Event::Text(t) => {
                let t = t.decode()?;
                if stack.last().is_some_and(|n| n == "Say" || n == "Number") {
                    text.push_str(&t);
                } else if !t.trim().is_empty() {
                    anyhow::bail!("unexpected text {t:?} in TwiML");
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.decode()?.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => anyhow::bail!("unknown entity &{other};"),
                };
                text.push_str(resolved);
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (Some("Response"), "Say") => {
                        verbs.push(Verb::Say(std::mem::take(&mut text).trim().to_owned()))
                    }
                    (Some("Connect"), "Stream") => {
                        if let Some((url, parameters)) = stream.take() {
                            verbs.push(Verb::ConnectStream { url, parameters });
                        }
                    }
                    (Some("Dial"), "Number") => verbs.push(Verb::Dial {
                        number: std::mem::take(&mut text).trim().to_owned(),
                        caller_id: dial_caller.take(),
                    }),
                    _ => {}
                }
            }
            Event::Eof => break,
            other => anyhow::bail!("unexpected TwiML content {other:?}"),
        }
    }
    anyhow::ensure!(saw_response, "TwiML must have a <Response> root");
    Ok(verbs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbot_core::twilio::twiml::{self as render, Verb as Out};

    #[test]
    fn parses_what_callbot_renders() {
        let xml = render::render(&[
            Out::Say("Hi & bye <3".into()),
            Out::ConnectStream {
                url: "wss://x/stream/b".into(),
                parameters: vec![("token".into(), "v1.a\"b".into())],
            },
            Out::Dial {
                number: "+15552223333".into(),
                caller_id: Some("+15550100000".into()),
                timeout: Some(20),
            },
            Out::Hangup,
        ]);
        assert_eq!(
            parse(&xml).unwrap(),
            vec![
                Verb::Say("Hi & bye <3".into()),
                Verb::ConnectStream {
                    url: "wss://x/stream/b".into(),
                    parameters: vec![("token".into(), "v1.a\"b".into())]
                },
                Verb::Dial {
                    number: "+15552223333".into(),
                    caller_id: Some("+15550100000".into())
                },
                Verb::Hangup
            ]
        );
    }

    #[test]
    fn refuses_junk() {
        assert!(parse("<Reply><Hangup/></Reply>").is_err());
        assert!(parse("<Response><Play>x</Play></Response>").is_err());
        assert!(parse("not xml at all <").is_err());
        assert!(parse("").is_err());
    }
}
