//! DynamoDB store: one table, partition key `pk`, sort key `sk`, GSI `gsi1` (`gsi1pk`, `gsi1sk`) for
//! per-tenant listings and `gsi2` (`gsi2pk`, `gsi2sk`) for per-bot listings, TTL attribute
//! `expires_at`. Multi-item invariants (quota, unique number, idempotency) use TransactWriteItems.
//!
//! Item layout:
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | bot | `BOT#<id>` | `BOT` | `TENANT#<t>#BOTS` / `<id>` (UUIDv7: time order) |
//! | number → bot | `NUMBER#<e164>` | `NUMBER` | |
//! | bot quota counter | `TENANT#<t>` | `QUOTA#bots` | |
//! | calls per bot per day | `BOT#<id>` | `CALLS#<day>` | |
//! | API key | `APIKEY#<sha256>` | `APIKEY` | `TENANT#<t>#KEYS` / `<sha256>` |
//! | idempotency | `IDEM#<t>#<scope>#<key>` | `IDEM` | |
//! | sequence | `SEQ#<name>` | `SEQ` | |
//! | call | `CALL#<sid>` | `CALL` | `TENANT#<t>#CALLS` / list key; gsi2: `BOT#<id>#CALLS` / list key |
//! | rate-limit slot | `RATE#<scope>` | `SLOT#<i>` | |
//! | lease place | `LEASE#<scope>` | `SLOT#<i>` | |
//! | campaign | `CAMPAIGN#<id>` | `CAMPAIGN` | `TENANT#<t>#CAMPAIGNS` / `<id>`; gsi2: `CAMPAIGNS#WORK` / `<id>` while a dialer has work in it |
//! | campaign row | `CAMPAIGN#<id>` | `ROW#<index, 6 digits>` | |
//! | test run | `BOT#<id>` | `TESTRUN#<run id>` (UUIDv7: time order) | |
//!
//! A call's list key is `<created_at RFC 3339>#<sid>`, so both indexes list calls newest first.

mod calls;
mod campaigns;
mod keys;
mod leases;
mod postcall;
mod rows;
mod test_runs;
mod tickets;
mod usage;

use super::{Bot, BotWithUsage, IdempotencyRecord, Store, StoreError, StoreResult, corrupt};
use crate::apikey::KeyHash;
use crate::domain::{
    BotId, BotStatus, Context, FirstMessage, Goal, PhoneNumber, TenantId, Voice, WebhookPolicy,
    WebhookUrl,
};
use crate::domain::{BotOptions, Brain, CallTimers};
use crate::settings::AwsSettings;
use crate::time_fmt;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

pub(super) fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(format!("dynamodb: {e}"))
}

pub(super) fn sdk_err<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    match e.as_service_error() {
        Some(se) => StoreError::Backend(format!(
            "dynamodb: {}: {}",
            se.code().unwrap_or("unknown"),
            se.message().unwrap_or("")
        )),
        None => StoreError::Backend(format!("dynamodb: {e:?}")),
    }
}

/// A conditional write's result: `Some` when it happened, `None` when its condition did not
/// hold; any other failure is an error.
pub(super) fn met<T, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    res: Result<T, SdkError<E, R>>,
) -> StoreResult<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.as_service_error().and_then(|se| se.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_err(e)),
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(format!("missing {name}")))
}

pub(super) fn get_n(item: &Item, name: &str) -> StoreResult<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .ok_or_else(|| corrupt(format!("missing {name}")))?
        .parse()
        .map_err(corrupt)
}

pub(super) fn bot_pk(id: &str) -> String {
    format!("BOT#{id}")
}

fn tenant_bots(t: &TenantId) -> String {
    format!("TENANT#{t}#BOTS")
}

fn quota_key(t: &TenantId) -> Item {
    key(format!("TENANT#{t}"), "QUOTA#bots")
}

fn idem_pk(t: &TenantId, scope: &str, k: &str) -> String {
    format!("IDEM#{t}#{scope}#{k}")
}

fn bot_item(bot: &Bot) -> Item {
    let mut item = key(bot_pk(bot.id.as_str()), "BOT");
    item.insert("gsi1pk".into(), s(tenant_bots(&bot.tenant)));
    item.insert("gsi1sk".into(), s(bot.id.as_str()));
    item.insert("id".into(), s(bot.id.as_str()));
    item.insert("tenant".into(), s(bot.tenant.as_str()));
    item.insert("number".into(), s(bot.number.as_str()));
    item.insert("number_sid".into(), s(&bot.number_sid));
    item.insert("goal".into(), s(bot.goal.as_str()));
    item.insert("context".into(), s(bot.context.as_str()));
    if let Some(w) = &bot.webhook {
        item.insert("webhook".into(), s(w.as_str()));
    }
    if let Some(b) = bot.brain.to_stored() {
        item.insert("brain".into(), s(b));
    }
    item.insert("voice".into(), s(bot.voice.to_string()));
    if let Some(t) = bot.timers.to_stored() {
        item.insert("call_timers".into(), s(t));
    }
    if let Some(o) = bot.options.to_stored() {
        item.insert("options".into(), s(o));
    }
    if let Some(f) = &bot.first_message {
        item.insert("first_message".into(), s(f.as_str()));
    }
    item.insert("status".into(), s(bot.status.as_str()));
    item.insert(
        "webhook_secret".into(),
        s(bot.webhook_secret.expose_secret()),
    );
    item.insert("created_at".into(), s(time_fmt::rfc3339(bot.created_at)));
    item.insert("updated_at".into(), s(time_fmt::rfc3339(bot.updated_at)));
    item
}

fn bot_from_item(item: &Item) -> StoreResult<Bot> {
    Ok(Bot {
        id: BotId::parse(get_s(item, "id")?).map_err(corrupt)?,
        tenant: TenantId::parse(get_s(item, "tenant")?).map_err(corrupt)?,
        number: PhoneNumber::parse(get_s(item, "number")?).map_err(corrupt)?,
        number_sid: get_s(item, "number_sid")?.to_owned(),
        goal: Goal::parse(get_s(item, "goal")?).map_err(corrupt)?,
        context: Context::parse(get_s(item, "context")?).map_err(corrupt)?,
        webhook: match item.get("webhook").and_then(|v| v.as_s().ok()) {
            Some(w) => Some(
                WebhookUrl::parse(
                    w,
                    WebhookPolicy {
                        allow_private: true,
                    },
                )
                .map_err(corrupt)?,
            ),
            None => None,
        },
        brain: Brain::from_stored(
            item.get("brain")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
        )
        .map_err(corrupt)?,
        voice: Voice::parse(get_s(item, "voice")?).map_err(corrupt)?,
        first_message: match item.get("first_message").and_then(|v| v.as_s().ok()) {
            Some(f) => Some(FirstMessage::parse(f).map_err(corrupt)?),
            None => None,
        },
        timers: CallTimers::from_stored(
            item.get("call_timers")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
        )
        .map_err(corrupt)?,
        options: BotOptions::from_stored(
            item.get("options")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
        )
        .map_err(corrupt)?,
        status: BotStatus::parse(get_s(item, "status")?).map_err(corrupt)?,
        webhook_secret: SecretString::from(get_s(item, "webhook_secret")?.to_owned()),
        created_at: time_fmt::parse_rfc3339(get_s(item, "created_at")?)
            .ok_or_else(|| corrupt("created_at"))?,
        updated_at: time_fmt::parse_rfc3339(get_s(item, "updated_at")?)
            .ok_or_else(|| corrupt("updated_at"))?,
    })
}

/// The `code` of each cancellation reason of a cancelled transaction (`None` = that item was fine).
pub(super) fn cancellation_codes(
    err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<String>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(ex)) => Some(
            ex.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

impl DynamoStore {
    /// Builds a client from settings. With `create_table` (dev and test), creates the table and its
    /// indexes if it does not exist yet.
    pub async fn connect(aws: &AwsSettings, table: &str, create_table: bool) -> StoreResult<Self> {
        let client = Client::new(&aws.sdk_config().await);
        let store = DynamoStore {
            client,
            table: table.to_owned(),
        };
        if create_table {
            store.ensure_table().await?;
        }
        Ok(store)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn ensure_table(&self) -> StoreResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let ks = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
                .map_err(backend)
        };
        let gsi = |name: &str, pk: &str, sk: &str| -> StoreResult<GlobalSecondaryIndex> {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(ks(pk, KeyType::Hash)?)
                .key_schema(ks(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(backend)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .attribute_definitions(attr("gsi2pk")?)
            .attribute_definitions(attr("gsi2sk")?)
            .key_schema(ks("pk", KeyType::Hash)?)
            .key_schema(ks("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi("gsi1", "gsi1pk", "gsi1sk")?)
            .global_secondary_indexes(gsi("gsi2", "gsi2pk", "gsi2sk")?)
            .send()
            .await;
        match created {
            Ok(_) => {
                let ttl = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(backend)?;
                // TTL is an optimisation (old counters and idempotency records expire); ignore if unsupported.
                let _ = self
                    .client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await;
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_err(e)),
        }
    }

    pub(super) async fn get_item(&self, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item)
    }

    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }

    /// A transaction item inserting an idempotency record unless its key is taken.
    pub(super) fn idempotency_put(
        &self,
        idem: &IdempotencyRecord,
    ) -> StoreResult<TransactWriteItem> {
        let mut item = key(idem_pk(&idem.tenant, &idem.scope, &idem.key), "IDEM");
        item.insert("tenant".into(), s(idem.tenant.as_str()));
        item.insert("scope".into(), s(&idem.scope));
        item.insert("key".into(), s(&idem.key));
        item.insert("request_hash".into(), s(&idem.request_hash));
        item.insert("status".into(), n(idem.status));
        item.insert("body".into(), s(&idem.body));
        item.insert("created_at".into(), s(time_fmt::rfc3339(idem.created_at)));
        // Replays are honoured for 24 hours, then DynamoDB's TTL may drop the record.
        item.insert(
            "expires_at".into(),
            n(idem.created_at.unix_timestamp() + 86_400),
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn counter(&self, key: Item) -> StoreResult<u32> {
        match self.get_item(key).await? {
            Some(item) => u32::try_from(get_n(&item, "n")?.max(0)).map_err(corrupt),
            None => Ok(0),
        }
    }
}

impl DynamoStore {
    /// Puts `item` unless an item with its key belongs to another tenant (`Conflict(msg)`).
    pub(super) async fn put_owned(
        &self,
        item: Item,
        tenant: &TenantId,
        msg: &str,
    ) -> StoreResult<()> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .send()
            .await;
        match met(res)? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict(msg.to_owned())),
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    async fn put_api_key(&self, hash: &KeyHash, tenant: &TenantId, label: &str) -> StoreResult<()> {
        let mut item = key(format!("APIKEY#{}", hash.as_str()), "APIKEY");
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("label".into(), s(label));
        item.insert("created_at".into(), s(time_fmt::rfc3339(time_fmt::now())));
        item.insert("gsi1pk".into(), s(keys::tenant_keys(tenant)));
        item.insert("gsi1sk".into(), s(hash.as_str()));
        self.put_owned(item, tenant, "API key already belongs to another tenant")
            .await
    }

    async fn tenant_for_api_key(&self, hash: &KeyHash) -> StoreResult<Option<TenantId>> {
        let item = self
            .get_item(key(format!("APIKEY#{}", hash.as_str()), "APIKEY"))
            .await?;
        item.map(|i| TenantId::parse(get_s(&i, "tenant")?).map_err(corrupt))
            .transpose()
    }

    async fn create_bot(
        &self,
        bot: &Bot,
        max_bots: u32,
        idempotency: Option<&IdempotencyRecord>,
    ) -> StoreResult<()> {
        let quota = Update::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(&bot.tenant)))
            .update_expression("ADD n :one")
            .condition_expression("attribute_not_exists(n) OR n < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(max_bots))
            .build()
            .map_err(backend)?;
        let put_bot = Put::builder()
            .table_name(&self.table)
            .set_item(Some(bot_item(bot)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(backend)?;
        let mut number = key(format!("NUMBER#{}", bot.number), "NUMBER");
        number.insert("bot_id".into(), s(bot.id.as_str()));
        number.insert("tenant".into(), s(bot.tenant.as_str()));
        let put_number = Put::builder()
            .table_name(&self.table)
            .set_item(Some(number))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(backend)?;
        let mut items = vec![
            TransactWriteItem::builder().update(quota).build(),
            TransactWriteItem::builder().put(put_bot).build(),
            TransactWriteItem::builder().put(put_number).build(),
        ];
        if let Some(idem) = idempotency {
            items.push(self.idempotency_put(idem)?);
        }
        match self.transact(items).await {
            Ok(_) => Ok(()),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) => {
                    let failed =
                        |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
                    if failed(3) {
                        Err(StoreError::IdempotencyKeyUsed)
                    } else if failed(0) {
                        Err(StoreError::QuotaExceeded { limit: max_bots })
                    } else if failed(2) {
                        Err(StoreError::Conflict(format!(
                            "number {} is already assigned",
                            bot.number
                        )))
                    } else if failed(1) {
                        Err(StoreError::Conflict(format!(
                            "bot {} already exists",
                            bot.id
                        )))
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

    async fn get_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>> {
        match self.get_item(key(bot_pk(id.as_str()), "BOT")).await? {
            Some(item) => {
                let bot = bot_from_item(&item)?;
                Ok((bot.tenant == *tenant).then_some(bot))
            }
            None => Ok(None),
        }
    }

    async fn bot_by_number(&self, number: &PhoneNumber) -> StoreResult<Option<Bot>> {
        let Some(map) = self
            .get_item(key(format!("NUMBER#{number}"), "NUMBER"))
            .await?
        else {
            return Ok(None);
        };
        let id = get_s(&map, "bot_id")?;
        match self.get_item(key(bot_pk(id), "BOT")).await? {
            Some(item) => Ok(Some(bot_from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn list_bots(&self, tenant: &TenantId, day: &str) -> StoreResult<Vec<BotWithUsage>> {
        let mut bots = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :p")
                .expression_attribute_values(":p", s(tenant_bots(tenant)))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            for item in out.items() {
                bots.push(bot_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // Today's call counters, fetched in batches of 100 (the BatchGetItem limit).
        let mut counts: HashMap<String, u32> = HashMap::new();
        for chunk in bots.chunks(100) {
            let mut keys = KeysAndAttributes::builder();
            for b in chunk {
                keys = keys.keys(key(bot_pk(b.id.as_str()), &format!("CALLS#{day}")));
            }
            let mut request = Some(HashMap::from([(
                self.table.clone(),
                keys.build().map_err(backend)?,
            )]));
            while let Some(req) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(req))
                    .send()
                    .await
                    .map_err(sdk_err)?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let pk = get_s(&item, "pk")?;
                    let id = pk.strip_prefix("BOT#").unwrap_or(pk).to_owned();
                    counts.insert(
                        id,
                        u32::try_from(get_n(&item, "n")?.max(0)).map_err(corrupt)?,
                    );
                }
                request = out.unprocessed_keys.filter(|u| !u.is_empty());
            }
        }
        Ok(bots
            .into_iter()
            .map(|bot| {
                let calls_today = counts.get(bot.id.as_str()).copied().unwrap_or(0);
                BotWithUsage { bot, calls_today }
            })
            .collect())
    }

    async fn count_bots(&self, tenant: &TenantId) -> StoreResult<u32> {
        self.counter(quota_key(tenant)).await
    }

    async fn update_bot(&self, bot: &Bot) -> StoreResult<()> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(bot_item(bot)))
            .condition_expression("attribute_exists(pk) AND tenant = :t AND #num = :num")
            .expression_attribute_names("#num", "number")
            .expression_attribute_values(":t", s(bot.tenant.as_str()))
            .expression_attribute_values(":num", s(bot.number.as_str()))
            .send()
            .await;
        match met(res)? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_bot(&self, tenant: &TenantId, id: &BotId) -> StoreResult<Option<Bot>> {
        let Some(bot) = self.get_bot(tenant, id).await? else {
            return Ok(None);
        };
        let del_bot = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(bot_pk(id.as_str()), "BOT")))
            .condition_expression("attribute_exists(pk) AND tenant = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .build()
            .map_err(backend)?;
        let del_number = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("NUMBER#{}", bot.number), "NUMBER")))
            .build()
            .map_err(backend)?;
        let quota = Update::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(tenant)))
            .update_expression("ADD n :minus")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(backend)?;
        let items = vec![
            TransactWriteItem::builder().delete(del_bot).build(),
            TransactWriteItem::builder().delete(del_number).build(),
            TransactWriteItem::builder().update(quota).build(),
        ];
        match self.transact(items).await {
            Ok(_) => Ok(Some(bot)),
            // Someone else deleted it between our read and our write.
            Err(e)
                if cancellation_codes(&e)
                    .is_some_and(|c| c.first().is_some_and(|c| c == "ConditionalCheckFailed")) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn get_idempotency(
        &self,
        tenant: &TenantId,
        scope: &str,
        k: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let Some(item) = self
            .get_item(key(idem_pk(tenant, scope, k), "IDEM"))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(IdempotencyRecord {
            tenant: TenantId::parse(get_s(&item, "tenant")?).map_err(corrupt)?,
            scope: get_s(&item, "scope")?.to_owned(),
            key: get_s(&item, "key")?.to_owned(),
            request_hash: get_s(&item, "request_hash")?.to_owned(),
            status: u16::try_from(get_n(&item, "status")?).map_err(corrupt)?,
            body: get_s(&item, "body")?.to_owned(),
            created_at: time_fmt::parse_rfc3339(get_s(&item, "created_at")?)
                .ok_or_else(|| corrupt("created_at"))?,
        }))
    }

    async fn next_sequence(&self, name: &str) -> StoreResult<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("SEQ#{name}"), "SEQ")))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_err)?;
        let attrs = out
            .attributes
            .ok_or_else(|| corrupt("sequence update returned nothing"))?;
        u64::try_from(get_n(&attrs, "n")?).map_err(corrupt)
    }

    async fn calls_today(&self, bot: &BotId, day: &str) -> StoreResult<u32> {
        self.counter(key(bot_pk(bot.as_str()), &format!("CALLS#{day}")))
            .await
    }
}
