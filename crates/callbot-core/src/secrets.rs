//! Secrets read at startup from AWS Secrets Manager (`GetSecretValue`), so they never sit in a
//! Lambda function's environment. Read once per process (a cold start); not on any request path.

use crate::settings::AwsSettings;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("GetSecretValue {id} failed: {message}")]
    Fetch { id: String, message: String },
    #[error(
        "secret {id} is not JSON with a non-empty `auth_token` (and optionally both `api_key_sid` and `api_key_secret`)"
    )]
    Shape { id: String },
    #[error("secret {id} is not JSON with a non-empty `api_key`")]
    ApiKeyShape { id: String },
}

#[derive(Deserialize)]
struct ApiKeySecret {
    api_key: String,
}

async fn secret_string(aws: &AwsSettings, id: &str) -> Result<Option<String>, SecretError> {
    let client = aws_sdk_secretsmanager::Client::new(&aws.sdk_config().await);
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Fetch {
            id: id.to_owned(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    Ok(out.secret_string().map(str::to_owned))
}

/// A provider's API key held in secret `id` as JSON `{"api_key": "..."}` (the model server's, for
/// the post-call function). Error messages never contain the secret.
pub async fn api_key_secret(aws: &AwsSettings, id: &str) -> Result<SecretString, SecretError> {
    let shape = || SecretError::ApiKeyShape { id: id.to_owned() };
    let raw = secret_string(aws, id).await?.ok_or_else(shape)?;
    let parsed: ApiKeySecret = serde_json::from_str(&raw).map_err(|_| shape())?;
    if parsed.api_key.is_empty() {
        return Err(shape());
    }
    Ok(SecretString::from(parsed.api_key))
}

#[derive(Deserialize)]
struct TwilioSecret {
    auth_token: String,
    api_key_sid: Option<String>,
    api_key_secret: Option<String>,
}

/// The Twilio Auth Token and optional REST API key held in secret `id` (name or ARN), whose
/// string is JSON `{"auth_token": "...", "api_key_sid"?: "SK...", "api_key_secret"?: "..."}`.
/// Error messages never contain the secret.
pub async fn twilio_secret(
    aws: &AwsSettings,
    id: &str,
) -> Result<(SecretString, Option<(String, SecretString)>), SecretError> {
    let shape = || SecretError::Shape { id: id.to_owned() };
    let raw = secret_string(aws, id).await?.ok_or_else(shape)?;
    let parsed: TwilioSecret = serde_json::from_str(&raw).map_err(|_| shape())?;
    if parsed.auth_token.is_empty() {
        return Err(shape());
    }
    let api_key = match (parsed.api_key_sid, parsed.api_key_secret) {
        (Some(sid), Some(secret)) if !sid.is_empty() && !secret.is_empty() => {
            Some((sid, SecretString::from(secret)))
        }
        (None, None) => None,
        _ => return Err(shape()),
    };
    Ok((SecretString::from(parsed.auth_token), api_key))
}
