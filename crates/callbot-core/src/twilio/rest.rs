//! The Twilio REST adapter of `Telephony` (API 2010-04-01): basic auth, form-encoded PascalCase
//! requests, JSON answers, Twilio's error shape mapped to `TelephonyError`.

use crate::domain::{AnsweredBy, BotId, CallSid, CallStatus, PhoneNumber};
use crate::telephony::{
    CarrierCall, NumberRequest, NumberWebhooks, OutboundCall, ProvisionedNumber, Telephony,
    TelephonyError,
};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// Twilio error codes that mean "the call has already ended" when we try to end or redirect it.
const CALL_ALREADY_ENDED: [u32; 2] = [20404, 21220];

#[derive(Debug, Clone)]
pub struct TwilioTelephony {
    http: reqwest::Client,
    /// `{api_base}/2010-04-01/Accounts/{sid}`
    account_url: String,
    username: String,
    secret: SecretString,
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AvailableList {
    available_phone_numbers: Vec<Available>,
}

#[derive(Debug, Deserialize)]
struct Available {
    phone_number: String,
}

#[derive(Debug, Deserialize)]
struct IncomingNumber {
    sid: String,
    phone_number: String,
}

#[derive(Debug, Deserialize)]
struct CallResource {
    sid: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    answered_by: Option<String>,
    /// Seconds, as a string (`"42"`), once the call ended.
    #[serde(default)]
    duration: Option<String>,
}

/// A failed request: HTTP status plus Twilio's code and message when the body had them.
#[derive(Debug)]
struct Failure {
    status: u16,
    code: Option<u32>,
    message: String,
}

impl Failure {
    fn into_error(self) -> TelephonyError {
        let detail = match self.code {
            Some(code) => format!("Twilio error {code}: {}", self.message),
            None => format!("HTTP {}: {}", self.status, self.message),
        };
        match self.status {
            401 | 403 => TelephonyError::Auth,
            429 | 500..=599 => TelephonyError::Unavailable(detail),
            _ => TelephonyError::Rejected(detail),
        }
    }
}

impl TwilioTelephony {
    /// `username`/`secret` are the account sid and auth token, or an API key sid and secret
    /// (the account sid stays in the path either way).
    pub fn new(
        api_base: &str,
        account_sid: &str,
        username: &str,
        secret: SecretString,
    ) -> Result<Self, TelephonyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(crate::http_client::CONNECT_TIMEOUT)
            .build()
            .map_err(|e| TelephonyError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(TwilioTelephony {
            http,
            account_url: format!(
                "{}/2010-04-01/Accounts/{account_sid}",
                api_base.trim_end_matches('/')
            ),
            username: username.to_owned(),
            secret,
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Option<T>, Failure> {
        let resp = req
            .basic_auth(&self.username, Some(self.secret.expose_secret()))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| Failure {
                status: 503,
                code: None,
                message: format!("request failed: {e}"),
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| Failure {
            status: 503,
            code: None,
            message: format!("reading the answer: {e}"),
        })?;
        if (200..300).contains(&status) {
            if status == 204 || body.is_empty() {
                return Ok(None);
            }
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| Failure {
                    status: 502,
                    code: None,
                    message: format!("unexpected answer: {e}"),
                });
        }
        let parsed: Option<TwilioError> = serde_json::from_slice(&body).ok();
        Err(Failure {
            status,
            code: parsed.as_ref().and_then(|p| p.code),
            message: parsed
                .and_then(|p| p.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
        })
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Option<T>, Failure> {
        let body = serde_urlencoded::to_string(form).map_err(|e| Failure {
            status: 400,
            code: None,
            message: e.to_string(),
        })?;
        self.send(
            self.http
                .post(format!("{}{path}", self.account_url))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Available local numbers, or `NoNumbers`.
    async fn search(
        &self,
        country: &str,
        area_code: Option<&str>,
    ) -> Result<Vec<String>, TelephonyError> {
        let mut query = vec![("VoiceEnabled", "true"), ("PageSize", "30")];
        if let Some(area) = area_code {
            query.push(("AreaCode", area));
        }
        let found: Vec<String> = self
            .send::<AvailableList>(
                self.http
                    .get(format!(
                        "{}/AvailablePhoneNumbers/{country}/Local.json",
                        self.account_url
                    ))
                    .query(&query),
            )
            .await
            .map_err(Failure::into_error)?
            .map(|l| l.available_phone_numbers)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.phone_number)
            .collect();
        if found.is_empty() {
            return Err(TelephonyError::NoNumbers(match area_code {
                Some(a) => format!("no {country} numbers available in area code {a}"),
                None => format!("no {country} numbers available"),
            }));
        }
        Ok(found)
    }

    /// Buys `phone` with the bot's webhooks set.
    async fn buy(
        &self,
        bot: &BotId,
        phone: &str,
        webhooks: &NumberWebhooks,
    ) -> Result<ProvisionedNumber, Failure> {
        let bought = self
            .post::<IncomingNumber>(
                "/IncomingPhoneNumbers.json",
                &[
                    ("PhoneNumber", phone),
                    ("FriendlyName", bot.as_str()),
                    ("VoiceUrl", &webhooks.voice_url),
                    ("VoiceMethod", "POST"),
                    ("StatusCallback", &webhooks.status_callback),
                    ("StatusCallbackMethod", "POST"),
                ],
            )
            .await?
            .ok_or_else(|| Failure {
                status: 502,
                code: None,
                message: "purchase answered without a number".into(),
            })?;
        match PhoneNumber::parse(&bought.phone_number) {
            Ok(number) => Ok(ProvisionedNumber {
                number,
                sid: bought.sid,
            }),
            Err(e) => {
                // Do not keep a number we cannot use.
                let _ = self.release(&bought.sid).await;
                Err(Failure {
                    status: 502,
                    code: None,
                    message: format!("Twilio returned a bad number: {e}"),
                })
            }
        }
    }

    async fn release(&self, sid: &str) -> Result<(), Failure> {
        let res = self
            .send::<serde_json::Value>(self.http.delete(format!(
                "{}/IncomingPhoneNumbers/{sid}.json",
                self.account_url
            )))
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(f) if f.status == 404 => Ok(()),
            Err(f) => Err(f),
        }
    }

    async fn update_call(
        &self,
        sid: &CallSid,
        form: &[(&str, &str)],
    ) -> Result<(), TelephonyError> {
        match self
            .post::<CallResource>(&format!("/Calls/{sid}.json"), form)
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.code.is_some_and(|c| CALL_ALREADY_ENDED.contains(&c)) => Ok(()),
            Err(f) => Err(f.into_error()),
        }
    }
}

#[async_trait]
impl Telephony for TwilioTelephony {
    fn kind(&self) -> &'static str {
        "twilio"
    }

    async fn provision_number(
        &self,
        bot: &BotId,
        request: &NumberRequest,
        webhooks: &NumberWebhooks,
    ) -> Result<ProvisionedNumber, TelephonyError> {
        let country = request.country.as_deref().unwrap_or("US");
        let mut last = None;
        // Concurrent buyers see the same search results: candidates are tried in random order,
        // and when all tried ones were taken first, we search again (three rounds at most).
        for _round in 0..3 {
            let mut candidates = self.search(country, request.area_code.as_deref()).await?;
            {
                use rand::seq::SliceRandom;
                candidates.shuffle(&mut rand::rng());
            }
            for candidate in candidates.iter().take(5) {
                match self.buy(bot, candidate, webhooks).await {
                    Ok(number) => return Ok(number),
                    // 21422: "not available" — someone bought it between search and purchase.
                    Err(f) if f.status == 400 && f.code == Some(21422) => last = Some(f),
                    Err(f) => return Err(f.into_error()),
                }
            }
        }
        Err(last.map_or_else(
            || TelephonyError::NoNumbers("no number could be bought".into()),
            Failure::into_error,
        ))
    }

    async fn release_number(&self, number: &ProvisionedNumber) -> Result<(), TelephonyError> {
        self.release(&number.sid).await.map_err(Failure::into_error)
    }

    async fn create_call(&self, call: &OutboundCall) -> Result<CallSid, TelephonyError> {
        let mut form = vec![
            ("To", call.to.as_str()),
            ("From", call.from.as_str()),
            ("Url", &call.answer_url),
            ("Method", "POST"),
            ("StatusCallback", &call.status_callback),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ];
        if let Some(amd) = &call.machine_detection {
            let mode = if amd.until_greeting_end {
                "DetectMessageEnd"
            } else {
                "Enable"
            };
            form.extend([
                ("MachineDetection", mode),
                ("AsyncAmd", "true"),
                ("AsyncAmdStatusCallback", amd.callback.as_str()),
                ("AsyncAmdStatusCallbackMethod", "POST"),
            ]);
        }
        let created = self
            .post::<CallResource>("/Calls.json", &form)
            .await
            .map_err(Failure::into_error)?
            .ok_or_else(|| TelephonyError::Rejected("Twilio created no call".into()))?;
        CallSid::parse(&created.sid)
            .map_err(|e| TelephonyError::Rejected(format!("Twilio returned a bad call sid: {e}")))
    }

    async fn hangup_call(&self, sid: &CallSid) -> Result<(), TelephonyError> {
        self.update_call(sid, &[("Status", "completed")]).await
    }

    async fn redirect_call(&self, sid: &CallSid, twiml: &str) -> Result<(), TelephonyError> {
        self.update_call(sid, &[("Twiml", twiml)]).await
    }

    async fn call_state(&self, sid: &CallSid) -> Result<Option<CarrierCall>, TelephonyError> {
        let fetched = self
            .send::<CallResource>(
                self.http
                    .get(format!("{}/Calls/{sid}.json", self.account_url)),
            )
            .await;
        let call = match fetched {
            Ok(Some(call)) => call,
            Ok(None) => return Err(TelephonyError::Rejected("Twilio sent an empty call".into())),
            Err(f) if f.status == 404 => return Ok(None),
            Err(f) => return Err(f.into_error()),
        };
        let status = call
            .status
            .as_deref()
            .map(CallStatus::parse)
            .transpose()
            .ok()
            .flatten()
            .ok_or_else(|| {
                TelephonyError::Rejected(format!("Twilio sent call status {:?}", call.status))
            })?;
        Ok(Some(CarrierCall {
            status,
            // Twilio's unknown values (a newer verdict) are not an error: the call's state stands.
            answered_by: call
                .answered_by
                .as_deref()
                .and_then(|a| AnsweredBy::parse(a).ok()),
            duration_secs: call.duration.as_deref().and_then(|d| d.parse().ok()),
        }))
    }
}
