//! Amazon Polly through `aws-sdk-polly`: `SynthesizeSpeech` as 8 kHz PCM (the neural engine where
//! the voice has it), μ-law encoded as the response body streams in. Credentials and region are
//! the platform's AWS settings; `AWS_ENDPOINT_URL_POLLY` points it at a local stand-in.

use super::{AudioStream, Speech, SpeechError, TextToSpeech};
use crate::audio::PHONE_RATE;
use crate::audio::pcm_stream::PcmToPhone;
use async_trait::async_trait;
use aws_sdk_polly::error::ProvideErrorMetadata;
use aws_sdk_polly::types::{Engine, OutputFormat, TextType, VoiceId};
use callbot_core::domain::voice_catalog::polly_voice;
use callbot_core::settings::{AwsSettings, PollySettings};
use futures_util::StreamExt;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Polly {
    client: aws_sdk_polly::Client,
    timeout: Duration,
}

impl Polly {
    pub async fn new(aws: &AwsSettings, polly: &PollySettings, timeout: Duration) -> Self {
        let sdk = aws.sdk_config().await;
        let mut conf = aws_sdk_polly::config::Builder::from(&sdk);
        if let Some(endpoint) = &polly.endpoint_url {
            conf = conf.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_polly::Client::from_conf(conf.build()),
            timeout,
        }
    }
}

fn sdk_error<E, R>(e: &aws_sdk_polly::error::SdkError<E, R>) -> SpeechError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_polly::error::SdkError;
    match e {
        SdkError::TimeoutError(_) => SpeechError::Timeout,
        SdkError::ServiceError(s) => SpeechError::Engine(format!(
            "polly refused the request ({})",
            s.err().code().unwrap_or("unknown error")
        )),
        SdkError::DispatchFailure(_) => SpeechError::Engine("polly: cannot connect".into()),
        _ => SpeechError::Engine("polly: request failed".into()),
    }
}

#[async_trait]
impl TextToSpeech for Polly {
    fn name(&self) -> &'static str {
        "polly"
    }

    async fn synthesize(&self, text: &str, voice: &str) -> Result<Speech, SpeechError> {
        super::whole(self, text, voice, self.timeout).await
    }

    async fn stream(&self, text: &str, voice: &str) -> Result<AudioStream, SpeechError> {
        let (id, _, neural) = polly_voice(voice)
            .ok_or_else(|| SpeechError::Engine(format!("polly has no voice {voice:?}")))?;
        let out = self
            .client
            .synthesize_speech()
            .engine(if neural {
                Engine::Neural
            } else {
                Engine::Standard
            })
            .output_format(OutputFormat::Pcm)
            .sample_rate("8000")
            .text_type(TextType::Text)
            .text(text)
            .voice_id(VoiceId::from(id))
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        // 16-bit samples may split across chunks: the converter carries the odd byte.
        let body = out.audio_stream;
        let state = (body, PcmToPhone::new(PHONE_RATE));
        let stream = futures_util::stream::unfold(state, |(mut body, mut conv)| async move {
            let mut out = Vec::new();
            match body.next().await? {
                Ok(chunk) => conv.push(&chunk, &mut out),
                Err(_) => {
                    let cut = SpeechError::Engine("polly: audio stream cut".into());
                    return Some((Err(cut), (body, conv)));
                }
            }
            Some((Ok(bytes::Bytes::from(out)), (body, conv)))
        });
        Ok(stream.boxed())
    }
}
