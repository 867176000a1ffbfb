//! The settings read from variables: defaults, each choice, and each refusal.

use super::*;

pub(super) fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn embedded_defaults() {
    let s = Settings::from_vars(&HashMap::new()).unwrap();
    assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
    assert!(matches!(s.store, StoreSettings::Sqlite { .. }));
    assert!(matches!(s.telephony, TelephonySettings::Local { .. }));
    assert!(!s.webhook_policy.allow_private);
    assert_eq!(s.limits.max_bots_per_tenant, 10);
    assert!(matches!(s.llm, LlmSettings::Local { threads: 2, .. }));
    let o = Settings::from_vars(&vars(&[
        ("CALLBOT_LLM", "openai"),
        ("OPENAI_API_KEY", "sk-test"),
        ("CALLBOT_LLM_MODEL", "llama3"),
    ]))
    .unwrap();
    assert!(
        matches!(o.llm, LlmSettings::OpenAi { ref base_url, ref model, .. } if base_url.as_str() == "https://api.openai.com/v1" && model == "llama3")
    );
    assert!(!format!("{o:?}").contains("sk-test"));
    assert!(Settings::from_vars(&vars(&[("CALLBOT_LLM", "gpt")])).is_err());
    assert!(
        !Settings::from_vars(&vars(&[("CALLBOT_LLM", "off")]))
            .unwrap()
            .llm
            .is_on()
    );
}

#[test]
fn the_instance_url_is_set_or_derived() {
    let s = Settings::from_vars(&vars(&[("CALLBOT_ADDR", "0.0.0.0:9000")])).unwrap();
    assert_eq!(s.instance_base(), "http://127.0.0.1:9000");
    let s =
        Settings::from_vars(&vars(&[("CALLBOT_INSTANCE_URL", "http://10.0.3.7:8080/")])).unwrap();
    assert_eq!(s.instance_base(), "http://10.0.3.7:8080");
    for bad in ["ws://10.0.3.7:8080", "10.0.3.7:8080", "mailto:x@y"] {
        assert!(
            Settings::from_vars(&vars(&[("CALLBOT_INSTANCE_URL", bad)])).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn dynamodb_twilio_and_errors() {
    let s = Settings::from_vars(&vars(&[
        ("CALLBOT_STORE", "dynamodb"),
        ("CALLBOT_DYNAMODB_TABLE", "t1"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("TWILIO_AUTH_TOKEN", "tok"),
        ("PUBLIC_BASE_URL", "https://api.example.com"),
        ("STREAM_BASE_URL", "wss://media.example.com"),
        ("CALLBOT_ALLOW_PRIVATE_WEBHOOKS", "true"),
    ]))
    .unwrap();
    assert!(matches!(s.store, StoreSettings::Dynamodb { ref table, .. } if table == "t1"));
    assert!(matches!(
        s.telephony,
        TelephonySettings::Twilio {
            credentials: TwilioCredentials::Inline { .. },
            ..
        }
    ));
    let from_secret = Settings::from_vars(&vars(&[
        ("TWILIO_ACCOUNT_SID", "AC123"),
        (
            "TWILIO_SECRET_ID",
            "arn:aws:secretsmanager:us-east-1:1:secret:twilio",
        ),
        ("PUBLIC_BASE_URL", "https://api.example.com"),
        ("STREAM_BASE_URL", "wss://media.example.com"),
    ]))
    .unwrap();
    assert!(matches!(
        from_secret.telephony,
        TelephonySettings::Twilio {
            credentials: TwilioCredentials::SecretsManager { ref secret_id },
            ..
        } if secret_id.ends_with(":twilio")
    ));
    assert!(
        Settings::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_SECRET_ID", "x"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("PUBLIC_BASE_URL", "https://api.example.com"),
            ("STREAM_BASE_URL", "wss://media.example.com"),
        ]))
        .is_err()
    );
    assert!(
        Settings::from_vars(&vars(&[("CALLBOT_API_KEY", "short")]))
            .unwrap_err()
            .to_string()
            .contains("CALLBOT_API_KEY")
    );
    assert!(s.webhook_policy.allow_private);
    // Secrets never show up in Debug output.
    assert!(!format!("{s:?}").contains("tok\""));
    assert!(Settings::from_vars(&vars(&[("CALLBOT_STORE", "mysql")])).is_err());
    assert!(Settings::from_vars(&vars(&[("CALLBOT_ADDR", "nope")])).is_err());
    assert!(Settings::from_vars(&vars(&[("TWILIO_ACCOUNT_SID", "AC1")])).is_err());
    assert!(
        Settings::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("PUBLIC_BASE_URL", "https://api.example.com"),
            ("STREAM_BASE_URL", "wss://media.example.com"),
            ("TWILIO_API_KEY_SID", "SK1"),
        ]))
        .is_err()
    );
    assert_eq!(s.public_base(), "https://api.example.com");
    assert_eq!(s.stream_base(), "wss://media.example.com");
    assert!(
        Settings::from_vars(&vars(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("PUBLIC_BASE_URL", "http://insecure.example.com"),
            ("STREAM_BASE_URL", "wss://media.example.com"),
        ]))
        .is_err()
    );
    let local = Settings::from_vars(&HashMap::new()).unwrap();
    assert_eq!(local.public_base(), "http://127.0.0.1:8080");
    assert_eq!(local.stream_base(), "ws://127.0.0.1:8080");
    assert!(Settings::from_vars(&vars(&[("CALLBOT_MAX_BOTS_PER_TENANT", "-1")])).is_err());
}

#[test]
fn the_local_recogniser_is_whisper_base_unless_told() {
    let local =
        |pairs: &[(&str, &str)]| match Settings::from_vars(&vars(pairs)).map(|s| s.calls.speech) {
            Ok(SpeechSettings::Local {
                model, decoding, ..
            }) => Ok((model, decoding)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
    let (model, decoding) = local(&[("CALLBOT_DATA_DIR", "/d")]).unwrap();
    assert_eq!(model, PathBuf::from("/d/models/ggml-base.bin"));
    assert_eq!(
        decoding,
        WhisperDecoding {
            beam: 1,
            prompt: true
        }
    );
    let (model, _) = local(&[
        ("CALLBOT_DATA_DIR", "/d"),
        ("CALLBOT_WHISPER_MODEL", "tiny.en"),
    ])
    .unwrap();
    assert_eq!(model, PathBuf::from("/d/models/ggml-tiny.en.bin"));
    let (model, decoding) = local(&[
        ("CALLBOT_WHISPER_MODEL", "/m/ggml-small.bin"),
        ("CALLBOT_WHISPER_BEAM", "5"),
        ("CALLBOT_WHISPER_PROMPT", "off"),
    ])
    .unwrap();
    assert_eq!(model, PathBuf::from("/m/ggml-small.bin"));
    assert_eq!(
        decoding,
        WhisperDecoding {
            beam: 5,
            prompt: false
        }
    );
    let e = local(&[("CALLBOT_WHISPER_BEAM", "0")]).unwrap_err();
    assert!(e.contains("CALLBOT_WHISPER_BEAM"), "{e}");
    assert!(local(&[("CALLBOT_WHISPER_PROMPT", "maybe")]).is_err());
}
