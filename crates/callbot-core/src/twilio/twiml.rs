//! TwiML rendering with quick-xml: the few verbs callbot answers calls with. Text and attribute
//! values are escaped by the writer, so caller-controlled text can never inject markup.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Say>text</Say>` (Twilio's default voice).
    Say(String),
    /// `<Connect><Stream url=…><Parameter name= value=/>…</Stream></Connect>`: a bidirectional
    /// media stream; the call waits here until the stream ends.
    ConnectStream {
        url: String,
        parameters: Vec<(String, String)>,
    },
    /// `<Dial callerId=… timeout=…><Number>…</Number></Dial>`: transfer the caller (`timeout`:
    /// seconds to ring, Twilio's default 30 when absent).
    Dial {
        number: String,
        caller_id: Option<String>,
        timeout: Option<u32>,
    },
    Hangup,
}

/// A complete `<Response>` document.
pub fn render(verbs: &[Verb]) -> String {
    let mut w = Writer::new(Vec::with_capacity(512));
    // Writing into a Vec cannot fail; the results are checked anyway and the document stays
    // well-formed because every start tag written is ended below.
    let mut put = |e: Event<'_>| {
        let _ = w.write_event(e);
    };
    put(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    put(Event::Start(BytesStart::new("Response")));
    for verb in verbs {
        match verb {
            Verb::Say(text) => {
                put(Event::Start(BytesStart::new("Say")));
                put(Event::Text(BytesText::new(text)));
                put(Event::End(BytesEnd::new("Say")));
            }
            Verb::ConnectStream { url, parameters } => {
                put(Event::Start(BytesStart::new("Connect")));
                let mut stream = BytesStart::new("Stream");
                stream.push_attribute(("url", url.as_str()));
                put(Event::Start(stream));
                for (name, value) in parameters {
                    let mut p = BytesStart::new("Parameter");
                    p.push_attribute(("name", name.as_str()));
                    p.push_attribute(("value", value.as_str()));
                    put(Event::Empty(p));
                }
                put(Event::End(BytesEnd::new("Stream")));
                put(Event::End(BytesEnd::new("Connect")));
            }
            Verb::Dial {
                number,
                caller_id,
                timeout,
            } => {
                let mut dial = BytesStart::new("Dial");
                if let Some(id) = caller_id {
                    dial.push_attribute(("callerId", id.as_str()));
                }
                if let Some(t) = timeout {
                    dial.push_attribute(("timeout", t.to_string().as_str()));
                }
                put(Event::Start(dial));
                put(Event::Start(BytesStart::new("Number")));
                put(Event::Text(BytesText::new(number)));
                put(Event::End(BytesEnd::new("Number")));
                put(Event::End(BytesEnd::new("Dial")));
            }
            Verb::Hangup => put(Event::Empty(BytesStart::new("Hangup"))),
        }
    }
    put(Event::End(BytesEnd::new("Response")));
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_stream_and_escapes() {
        let xml = render(&[
            Verb::ConnectStream {
                url: "wss://media.example.com/stream/bot_1".into(),
                parameters: vec![("token".into(), "a\"b<c>&".into())],
            },
            Verb::Hangup,
        ]);
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://media.example.com/stream/bot_1\">\
             <Parameter name=\"token\" value=\"a&quot;b&lt;c&gt;&amp;\"/></Stream></Connect>\
             <Hangup/></Response>"
        );
        let dial = render(&[Verb::Dial {
            number: "+15552223333".into(),
            caller_id: None,
            timeout: Some(20),
        }]);
        assert!(
            dial.contains("<Dial timeout=\"20\"><Number>+15552223333</Number></Dial>"),
            "{dial}"
        );
        let say = render(&[Verb::Say("</Say><Hangup/>".into())]);
        assert!(say.contains("&lt;/Say&gt;&lt;Hangup/&gt;"), "{say}");
    }
}
