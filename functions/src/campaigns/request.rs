//! The body of `POST /campaigns`, as JSON (rows as a list or as CSV text) or as a multipart
//! upload (a CSV file with a header row), parsed into a campaign and its rows.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::parse_json;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use callbot_core::call_texts::CallTexts;
use callbot_core::domain::template::Missing;
use callbot_core::domain::{CallingWindow, PhoneNumber, RetryPolicy, Variables};
use callbot_core::store::{Bot, CampaignRow};
use serde::Deserialize;
use std::collections::HashSet;
use time::OffsetDateTime;

/// Rows a campaign may have.
pub const MAX_ROWS: usize = 10_000;
/// A campaign's upload may be this large (a 10,000-row list with a few variables).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Calls a campaign may have in progress at once.
pub const MAX_CONCURRENCY: u32 = 100;

/// One row of a JSON campaign.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowRequest {
    /// Who to call, E.164.
    #[serde(default)]
    #[schema(required = true, nullable = false, example = "+15551230001")]
    to: Option<String>,
    /// Values for the bot's `{{name}}` placeholders, over the bot's own `variables`.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"name": "Ana", "time": "7 PM"}))]
    variables: Option<serde_json::Value>,
}

/// Body of `POST /campaigns` (JSON; the same fields as form fields in a multipart upload, with
/// the list as a CSV file named `rows`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// The bot that calls (its number is the caller id).
    #[serde(default)]
    #[schema(required = true, nullable = false, pattern = "^bot_[0-9a-f]{32}$")]
    pub bot_id: Option<String>,
    /// Your name for it (1-100 characters). Default: "Campaign" and its creation time.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Who to call: `to` and `variables` per row (1-10,000 rows; or `rows_csv`).
    #[serde(default)]
    pub rows: Option<Vec<RowRequest>>,
    /// The list as CSV text with a header row: a `to` column and one column per variable.
    #[serde(default)]
    pub rows_csv: Option<String>,
    /// When calls may be placed, in the bot's `timezone`: `{"days": ["mon", …], "start":
    /// "09:00", "end": "17:00"}`. Default: every day, 09:00-20:00.
    #[serde(default)]
    #[schema(value_type = Option<WindowDoc>, example = json!({"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}))]
    pub window: Option<serde_json::Value>,
    /// Calls in progress at once (1-100, default 5). The account's own limit on calls in
    /// progress also applies.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrency: Option<u32>,
    /// Per outcome (`no_answer`, `busy`, `failed`, `machine`): `{"attempts": n, "delay_seconds":
    /// s}`, attempts in all (1-10) and the wait between them. Default: no answer 2 attempts an
    /// hour apart, busy 3 ten minutes apart, failed and machine 1.
    #[serde(default)]
    #[schema(value_type = Option<RetryDoc>, example = json!({"no_answer": {"attempts": 3, "delay_seconds": 3600}}))]
    pub retry: Option<serde_json::Value>,
}

/// The same campaign as a `multipart/form-data` upload (`curl -F rows=@list.csv …`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // describes the form; `from_form` reads it
pub struct CampaignUpload {
    #[schema(pattern = "^bot_[0-9a-f]{32}$")]
    bot_id: String,
    /// The list: CSV with a header row, `to` and one column per variable.
    #[schema(format = Binary, content_media_type = "text/csv")]
    rows: String,
    name: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    max_concurrency: Option<u32>,
    /// The calling window, as JSON text.
    #[schema(content_media_type = "application/json")]
    window: Option<String>,
    /// The retry policy, as JSON text.
    #[schema(content_media_type = "application/json")]
    retry: Option<String>,
}

/// A calling window: days of the week and hours of the day, in the bot's time zone.
#[derive(Debug, utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes what `CallingWindow::parse` reads
pub struct WindowDoc {
    /// Days calls may be placed on (default: every day).
    #[schema(min_items = 1)]
    days: Option<Vec<DayDoc>>,
    /// From (default 09:00), `HH:MM`.
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "09:00")]
    start: Option<String>,
    /// Until (default 20:00, exclusive), `HH:MM`, at most 24:00; after `start`.
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "17:00")]
    end: Option<String>,
}

#[derive(Debug, utoipa::ToSchema, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DayDoc {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Attempts in all and the wait between them, for rows whose calls end one way.
#[derive(Debug, utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RetryRuleDoc {
    #[schema(minimum = 1, maximum = 10)]
    attempts: Option<u8>,
    #[schema(minimum = 0, maximum = 604800)]
    delay_seconds: Option<u32>,
}

/// The retry rule per outcome; outcomes left out keep their default.
#[derive(Debug, utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RetryDoc {
    no_answer: Option<RetryRuleDoc>,
    busy: Option<RetryRuleDoc>,
    failed: Option<RetryRuleDoc>,
    machine: Option<RetryRuleDoc>,
}

/// Reads the body: JSON, or `multipart/form-data`.
pub async fn read(state: &AppState, req: Request) -> ApiResult<CampaignRequest> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
        return from_form(form).await;
    }
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.is_empty() && essence != "application/json" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json or multipart/form-data, not {essence:?}"
        )));
    }
    let raw = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })?;
    parse_json(&raw)
}

async fn from_form(mut form: Multipart) -> ApiResult<CampaignRequest> {
    let bad = |m: String| ApiError::bad_request("invalid_multipart", m);
    let mut req = CampaignRequest::default();
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        let name = field.name().unwrap_or("").to_owned();
        let text = field.text().await.map_err(|e| bad(e.body_text()))?;
        let json = |t: &str| {
            serde_json::from_str::<serde_json::Value>(t)
                .map_err(|e| ApiError::bad_field(&name, "invalid_json", e))
        };
        match name.as_str() {
            "bot_id" => req.bot_id = Some(text),
            "name" => req.name = Some(text),
            "rows" | "rows_csv" => req.rows_csv = Some(text),
            "window" => req.window = Some(json(&text)?),
            "retry" => req.retry = Some(json(&text)?),
            "max_concurrency" => {
                req.max_concurrency = Some(text.trim().parse().map_err(|_| {
                    ApiError::bad_field(&name, "invalid_max_concurrency", "must be a whole number")
                })?)
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown_field",
                    "not a field of a campaign (bot_id, name, rows, window, max_concurrency, retry)",
                ));
            }
        }
    }
    Ok(req)
}

/// The settings of a campaign, parsed.
#[derive(Debug)]
pub struct Settings {
    pub name: String,
    pub window: CallingWindow,
    pub retry: RetryPolicy,
    pub max_concurrency: u32,
}

pub fn settings(req: &CampaignRequest, now: OffsetDateTime) -> ApiResult<Settings> {
    let name = match req.name.as_deref().map(str::trim) {
        None => format!("Campaign {}", callbot_core::time_fmt::rfc3339(now)),
        Some(n) if (1..=100).contains(&n.chars().count()) && !n.chars().any(char::is_control) => {
            n.to_owned()
        }
        Some(_) => {
            return Err(ApiError::bad_field(
                "name",
                "invalid_name",
                "must be 1-100 characters without control characters",
            ));
        }
    };
    let window = req
        .window
        .as_ref()
        .map(CallingWindow::parse)
        .transpose()
        .map_err(|e| ApiError::field("window", e))?
        .unwrap_or_default();
    let retry = req
        .retry
        .as_ref()
        .map(RetryPolicy::parse)
        .transpose()
        .map_err(|e| ApiError::field("retry", e))?
        .unwrap_or_default();
    let max_concurrency = req.max_concurrency.unwrap_or(5);
    if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
        return Err(ApiError::bad_field(
            "max_concurrency",
            "invalid_max_concurrency",
            format!("must be 1 to {MAX_CONCURRENCY}"),
        ));
    }
    Ok(Settings {
        name,
        window,
        retry,
        max_concurrency,
    })
}

/// The rows, each checked: a valid number, valid variables, every placeholder of the bot's
/// texts filled, no number twice.
pub fn rows(req: &CampaignRequest, bot: &Bot, now: OffsetDateTime) -> ApiResult<Vec<CampaignRow>> {
    let raw = match (&req.rows, &req.rows_csv) {
        (Some(rows), None) => rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let vars = r
                    .variables
                    .as_ref()
                    .map(|v| Variables::parse(v, &format!("rows[{i}].variables")))
                    .transpose()
                    .map_err(|e| variables_error(&format!("rows[{i}].variables"), e))?
                    .unwrap_or_default();
                Ok((format!("rows[{i}]"), r.to.clone().unwrap_or_default(), vars))
            })
            .collect::<ApiResult<Vec<_>>>()?,
        (None, Some(csv)) => from_csv(csv)?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_rows",
                "rows: give either `rows` or `rows_csv`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_field(
                "rows",
                "missing_fields",
                "a campaign needs rows",
            ));
        }
    };
    if raw.is_empty() || raw.len() > MAX_ROWS {
        return Err(ApiError::bad_field(
            "rows",
            "invalid_rows",
            format!("a campaign has 1 to {MAX_ROWS} rows, not {}", raw.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(raw.len());
    for (i, (at, to, variables)) in raw.into_iter().enumerate() {
        let to = PhoneNumber::parse(&to).map_err(|e| ApiError::field(&format!("{at}.to"), e))?;
        if !seen.insert(to.clone()) {
            return Err(ApiError::bad_field(
                &format!("{at}.to"),
                "duplicate_number",
                format!(
                    "{} is already in an earlier row; each number is called once per campaign",
                    to.as_str()
                ),
            ));
        }
        let texts = CallTexts {
            bot,
            prompt: None,
            first_message: None,
            variables: &variables,
            other_party: to.as_str(),
        };
        if let Err(Missing(names)) = texts.fill(now) {
            let names: Vec<String> = names.iter().map(|n| format!("{{{{{n}}}}}")).collect();
            return Err(ApiError::bad_field(
                at.as_str(),
                "missing_variables",
                format!(
                    "no value for {}: add a column (or variable) for it, or a default to the bot's `variables`",
                    names.join(", ")
                ),
            ));
        }
        rows.push(CampaignRow::new(
            u32::try_from(i).unwrap_or(u32::MAX),
            to,
            variables,
        ));
    }
    Ok(rows)
}

/// A row's variables refused (the message already names `at`).
fn variables_error(at: &str, e: callbot_core::ParseError) -> ApiError {
    ApiError::BadRequest {
        code: e.code,
        message: e.message,
        field: Some(at.to_owned()),
    }
}

/// CSV with a header row: `to` and one column per variable; an empty cell leaves that
/// variable to the bot's default.
fn from_csv(text: &str) -> ApiResult<Vec<(String, String, Variables)>> {
    let bad = |m: String| ApiError::bad_field("rows_csv", "invalid_csv", m);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let to_col = header
        .iter()
        .position(|h| h.eq_ignore_ascii_case("to"))
        .ok_or_else(|| {
            bad(format!(
                "the header row needs a \"to\" column (it has {header:?})"
            ))
        })?;
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| bad(format!("line {line}: {e}")))?;
        let mut vars = serde_json::Map::new();
        for (col, value) in header
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(c, _)| *c != to_col)
            .map(|(_, p)| p)
        {
            if !value.is_empty() {
                vars.insert(col.clone(), serde_json::Value::String(value.to_owned()));
            }
        }
        let at = format!("rows_csv line {line}");
        let vars = Variables::parse(&serde_json::Value::Object(vars), &at)
            .map_err(|e| variables_error(&at, e))?;
        out.push((at, record.get(to_col).unwrap_or("").to_owned(), vars));
        if out.len() > MAX_ROWS {
            break;
        }
    }
    Ok(out)
}
