//! DynamoDB adapter of `CallStore`: call items (listed through `gsi1` per tenant and `gsi2` per
//! bot), daily call counters and rate-limit slots, all with conditional writes.

use super::{
    DynamoStore, Item, backend, bot_pk, cancellation_codes, get_n, get_s, key, n, s, sdk_err,
};
use crate::domain::{
    AnsweredBy, BotId, CallDirection, CallSid, CallStatus, Channel, FirstMessage, Goal, TenantId,
    UserLabel, Variables,
};
use crate::store::calls::{page, retry_after, unix_ms};
use crate::store::{
    CallFilter, CallPage, CallRecord, CallStore, Cursor, IdempotencyRecord, RateDecision,
    StatusOutcome, StatusUpdate, StoreError, StoreResult, TurnRecord, TurnStore, corrupt,
};
use crate::time_fmt;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use time::OffsetDateTime;

fn call_pk(sid: &str) -> String {
    format!("CALL#{sid}")
}

fn tenant_calls(t: &TenantId) -> String {
    format!("TENANT#{t}#CALLS")
}

fn bot_calls(b: &BotId) -> String {
    format!("BOT#{b}#CALLS")
}

fn call_item(c: &CallRecord) -> Item {
    let mut item = key(call_pk(c.sid.as_str()), "CALL");
    let list_key = c.list_key();
    item.insert("gsi1pk".into(), s(tenant_calls(&c.tenant)));
    item.insert("gsi1sk".into(), s(&list_key));
    item.insert("gsi2pk".into(), s(bot_calls(&c.bot_id)));
    item.insert("gsi2sk".into(), s(list_key));
    item.insert("sid".into(), s(c.sid.as_str()));
    item.insert("tenant".into(), s(c.tenant.as_str()));
    item.insert("bot_id".into(), s(c.bot_id.as_str()));
    item.insert("direction".into(), s(c.direction.as_str()));
    item.insert("channel".into(), s(c.channel.as_str()));
    item.insert("from".into(), s(&c.from));
    item.insert("to".into(), s(&c.to));
    if let Some(u) = &c.user {
        item.insert("user".into(), s(u.as_str()));
    }
    item.insert("status".into(), s(c.status.as_str()));
    item.insert("status_seq".into(), n(c.status_seq));
    if let Some(p) = &c.prompt {
        item.insert("prompt".into(), s(p.as_str()));
    }
    if let Some(f) = &c.first_message {
        item.insert("first_message".into(), s(f.as_str()));
    }
    item.insert("created_at".into(), s(time_fmt::rfc3339(c.created_at)));
    item.insert("updated_at".into(), s(time_fmt::rfc3339(c.updated_at)));
    for (name, t) in [("started_at", c.started_at), ("ended_at", c.ended_at)] {
        if let Some(t) = t {
            item.insert(name.into(), s(time_fmt::rfc3339(t)));
        }
    }
    if let Some(d) = c.duration_secs {
        item.insert("duration_secs".into(), n(d));
    }
    if let Some(v) = c.variables.to_stored() {
        item.insert("variables".into(), s(v));
    }
    if let Some(a) = c.answered_by {
        item.insert("answered_by".into(), s(a.as_str()));
    }
    item
}

fn opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn call_from_item(item: &Item) -> StoreResult<CallRecord> {
    let time = |name: &str| {
        opt_s(item, name)
            .map(|v| time_fmt::parse_rfc3339(v).ok_or_else(|| corrupt(name)))
            .transpose()
    };
    Ok(CallRecord {
        sid: CallSid::parse(get_s(item, "sid")?).map_err(corrupt)?,
        tenant: TenantId::parse(get_s(item, "tenant")?).map_err(corrupt)?,
        bot_id: BotId::parse(get_s(item, "bot_id")?).map_err(corrupt)?,
        direction: CallDirection::parse(get_s(item, "direction")?).map_err(corrupt)?,
        channel: opt_s(item, "channel")
            .map(Channel::parse)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default(),
        from: get_s(item, "from")?.to_owned(),
        to: get_s(item, "to")?.to_owned(),
        user: opt_s(item, "user")
            .map(UserLabel::parse)
            .transpose()
            .map_err(corrupt)?,
        status: CallStatus::parse(get_s(item, "status")?).map_err(corrupt)?,
        status_seq: get_n(item, "status_seq")?,
        prompt: opt_s(item, "prompt")
            .map(Goal::parse)
            .transpose()
            .map_err(corrupt)?,
        first_message: opt_s(item, "first_message")
            .map(FirstMessage::parse)
            .transpose()
            .map_err(corrupt)?,
        created_at: time("created_at")?.ok_or_else(|| corrupt("created_at"))?,
        updated_at: time("updated_at")?.ok_or_else(|| corrupt("updated_at"))?,
        started_at: time("started_at")?,
        ended_at: time("ended_at")?,
        duration_secs: match item.get("duration_secs") {
            Some(_) => Some(u32::try_from(get_n(item, "duration_secs")?).map_err(corrupt)?),
            None => None,
        },
        variables: Variables::from_stored(opt_s(item, "variables")).map_err(corrupt)?,
        answered_by: opt_s(item, "answered_by")
            .map(AnsweredBy::parse)
            .transpose()
            .map_err(corrupt)?,
    })
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl CallStore for DynamoStore {
    async fn create_call(
        &self,
        call: &CallRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<bool> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(call_item(call)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(backend)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if let Some(idem) = idempotency {
            items.push(self.idempotency_put(idem)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) => {
                    let failed =
                        |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
                    if failed(1) {
                        Err(StoreError::IdempotencyKeyUsed)
                    } else if failed(0) {
                        Ok(false)
                    } else {
                        Err(StoreError::Backend(format!(
                            "dynamodb: transaction cancelled: {codes:?}"
                        )))
                    }
                }
                None => Err(sdk_err(e)),
            },
        }
    }

    async fn get_call(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Option<CallRecord>> {
        Ok(self.call_by_sid(sid).await?.filter(|c| c.tenant == *tenant))
    }

    async fn call_by_sid(&self, sid: &CallSid) -> StoreResult<Option<CallRecord>> {
        self.get_item(key(call_pk(sid.as_str()), "CALL"))
            .await?
            .map(|i| call_from_item(&i))
            .transpose()
    }

    async fn update_call_status(
        &self,
        sid: &CallSid,
        update: &StatusUpdate,
    ) -> StoreResult<StatusOutcome> {
        // Optimistic concurrency: write only if status, sequence and machine verdict are still
        // what we read (the whole item is written back).
        for _ in 0..8 {
            let Some(current) = self.call_by_sid(sid).await? else {
                return Ok(StatusOutcome::UnknownCall);
            };
            let Some(next) = current.with_status(update) else {
                return Ok(StatusOutcome::Ignored(current));
            };
            let req = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(call_item(&next)))
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(current.status.as_str()))
                .expression_attribute_values(":seq", n(current.status_seq));
            let req = match current.answered_by {
                None => req.condition_expression(
                    "#st = :st AND status_seq = :seq AND attribute_not_exists(answered_by)",
                ),
                Some(a) => req
                    .condition_expression("#st = :st AND status_seq = :seq AND answered_by = :ab")
                    .expression_attribute_values(":ab", s(a.as_str())),
            };
            let res = req.send().await;
            match res {
                Ok(_) => return Ok(StatusOutcome::Applied(next)),
                Err(e) if e.as_service_error().is_some_and(is_condition_failure) => continue,
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "call {sid} is being updated concurrently"
        )))
    }

    async fn set_answered_by(
        &self,
        sid: &CallSid,
        answered_by: AnsweredBy,
    ) -> StoreResult<Option<CallRecord>> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(call_pk(sid.as_str()), "CALL")))
            .update_expression("SET answered_by = :a")
            .condition_expression("attribute_exists(sid)")
            .expression_attribute_values(":a", s(answered_by.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => out.attributes().map(call_from_item).transpose(),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn list_calls(
        &self,
        tenant: &TenantId,
        filter: &CallFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> StoreResult<CallPage> {
        let (index, pk_name, sk_name, pk) = match &filter.bot {
            Some(bot) => ("gsi2", "gsi2pk", "gsi2sk", bot_calls(bot)),
            None => ("gsi1", "gsi1pk", "gsi1sk", tenant_calls(tenant)),
        };
        let after = cursor.map_or_else(|| "\u{10FFFF}".to_owned(), |c| c.key().to_owned());
        let want = limit as usize + 1;
        let mut calls = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(format!("{pk_name} = :p AND {sk_name} < :after"))
                .expression_attribute_values(":p", s(&pk))
                .expression_attribute_values(":after", s(&after))
                .expression_attribute_values(":t", s(tenant.as_str()))
                .expression_attribute_names("#tenant", "tenant")
                .scan_index_forward(false)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            q = match filter.status {
                Some(st) => q
                    .filter_expression("#tenant = :t AND #st = :st")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", s(st.as_str())),
                None => q.filter_expression("#tenant = :t"),
            };
            let out = q.send().await.map_err(sdk_err)?;
            for item in out.items() {
                calls.push(call_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && calls.len() < want => start = Some(k),
                _ => break,
            }
        }
        calls.truncate(want);
        Ok(page(calls, limit))
    }

    async fn count_call(&self, bot: &BotId, day: &str, limit: u32) -> StoreResult<()> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(bot_pk(bot.as_str()), &format!("CALLS#{day}"))))
            .update_expression("ADD n :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            // Counters are kept for 35 days, then TTL removes them.
            .expression_attribute_values(":exp", n(time_fmt::now().unix_timestamp() + 35 * 86_400))
            .send()
            .await;
        match res {
            Ok(_) if limit > 0 => Ok(()),
            Ok(_) => {
                self.uncount_call(bot, day).await?;
                Err(StoreError::QuotaExceeded { limit })
            }
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {
                Err(StoreError::QuotaExceeded { limit })
            }
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn uncount_call(&self, bot: &BotId, day: &str) -> StoreResult<()> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(bot_pk(bot.as_str()), &format!("CALLS#{day}"))))
            .update_expression("ADD n :minus")
            .condition_expression("n > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn acquire_rate_slot(
        &self,
        scope: &str,
        limit: u32,
        window_secs: u64,
        now: OffsetDateTime,
    ) -> StoreResult<RateDecision> {
        let now_ms = unix_ms(now);
        let until = now_ms + i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        // Each of the `limit` slots is one item, held until `until`. Start at a random slot so
        // concurrent requests spread out; a slot is taken with a conditional write, so two
        // requests can never hold the same one.
        let first = rand::random_range(0..limit.max(1));
        for i in 0..limit {
            let slot = (first + i) % limit;
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some({
                    let mut item = key(format!("RATE#{scope}"), &format!("SLOT#{slot}"));
                    item.insert("until_ms".into(), n(until));
                    item.insert("expires_at".into(), n(until / 1000 + 60));
                    item
                }))
                .condition_expression("attribute_not_exists(until_ms) OR until_ms <= :now")
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(RateDecision::Allowed),
                Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {}
                Err(e) => return Err(sdk_err(e)),
            }
        }
        // All taken: the earliest expiry says when to come back.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(format!("RATE#{scope}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        let oldest = out
            .items()
            .iter()
            .filter_map(|i| get_n(i, "until_ms").ok())
            .min()
            .unwrap_or(until);
        Ok(RateDecision::Limited {
            retry_after_secs: retry_after(oldest, now, window_secs),
        })
    }
}

#[async_trait]
impl TurnStore for DynamoStore {
    async fn put_turn(
        &self,
        tenant: &TenantId,
        sid: &CallSid,
        turn: &TurnRecord,
    ) -> StoreResult<()> {
        let data = serde_json::to_string(turn)
            .map_err(|e| StoreError::Backend(format!("encoding turn: {e}")))?;
        let mut item = key(call_pk(sid.as_str()), &format!("TURN#{:05}", turn.turn));
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("data".into(), s(data));
        self.put_owned(item, tenant, "turn belongs to another tenant's call")
            .await
    }

    async fn turns(&self, tenant: &TenantId, sid: &CallSid) -> StoreResult<Vec<TurnRecord>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :t)")
                .expression_attribute_values(":p", s(call_pk(sid.as_str())))
                .expression_attribute_values(":t", s("TURN#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_err)?;
            for item in page.items() {
                if get_s(item, "tenant")? != tenant.as_str() {
                    return Ok(Vec::new());
                }
                let data = get_s(item, "data")?;
                out.push(serde_json::from_str(data).map_err(|e| corrupt(format!("turn: {e}")))?);
            }
            match page.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(out),
            }
        }
    }
}
