//! Campaign row items on DynamoDB (`CAMPAIGN#<id>` / `ROW#<index>`): their batch writes, reads,
//! the conditional update of a row move, and the paged queries the campaign adapter reads with.

use super::campaigns::{campaign_pk, names, values};
use super::{DynamoStore, Item, backend, get_n, get_s, key, n, s, sdk_err};
use crate::domain::{CampaignId, CampaignStatus, PhoneNumber, RowState, Variables};
use crate::store::campaigns::CampaignRow;
use crate::store::{StoreError, StoreResult, corrupt};
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// A row's sort key: zero-padded, so rows sort by index.
pub(super) fn row_sk(index: u32) -> String {
    format!("ROW#{index:06}")
}

/// A row as stored, with the version its next move is conditioned on.
#[derive(Debug, Clone)]
pub(super) struct RowItem {
    pub row: CampaignRow,
    pub version: i64,
}

impl RowItem {
    pub fn from_item(item: &Item) -> StoreResult<Self> {
        let vars = item.get("variables").and_then(|v| v.as_s().ok());
        let index = u32::try_from(get_n(item, "idx")?).map_err(corrupt)?;
        Ok(Self {
            row: CampaignRow {
                index,
                to: PhoneNumber::parse(get_s(item, "to")?).map_err(corrupt)?,
                variables: Variables::from_stored(vars.map(String::as_str)).map_err(corrupt)?,
                state: RowState::parse(get_s(item, "state")?).map_err(corrupt)?,
                attempts: CampaignRow::attempts_from_json(get_s(item, "attempts")?)?,
                next_at_ms: get_n(item, "next_at_ms")?,
                claimed_until_ms: get_n(item, "claimed_until_ms")?,
            },
            version: get_n(item, "v")?,
        })
    }
}

fn row_item(id: &CampaignId, r: &CampaignRow) -> Item {
    let mut item = key(campaign_pk(id), &row_sk(r.index));
    item.insert("idx".into(), n(r.index));
    item.insert("to".into(), s(r.to.as_str()));
    if let Some(v) = r.variables.to_stored() {
        item.insert("variables".into(), s(v));
    }
    item.insert("state".into(), s(r.state.as_str()));
    item.insert("attempts".into(), s(r.attempts_json()));
    item.insert("next_at_ms".into(), n(r.next_at_ms));
    item.insert("claimed_until_ms".into(), n(r.claimed_until_ms));
    item.insert("v".into(), n(0));
    item
}

/// Batch writes in flight at once while a campaign's rows are stored.
const PARALLEL_BATCHES: usize = 8;

impl DynamoStore {
    /// Writes rows 25 to a request (BatchWriteItem's limit), several requests at once, sending
    /// again what DynamoDB leaves unprocessed.
    pub(super) async fn put_rows(&self, id: &CampaignId, rows: &[CampaignRow]) -> StoreResult<()> {
        let batches: Vec<Vec<WriteRequest>> = rows
            .chunks(25)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|r| {
                        let put = PutRequest::builder()
                            .set_item(Some(row_item(id, r)))
                            .build()
                            .map_err(backend)?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<StoreResult<Vec<_>>>()
            })
            .collect::<StoreResult<_>>()?;
        futures_util::stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(PARALLEL_BATCHES)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> StoreResult<()> {
        for attempt in 0..10u64 {
            let out = self
                .client
                .batch_write_item()
                .request_items(self.table(), batch)
                .send()
                .await
                .map_err(sdk_err)?;
            batch = out
                .unprocessed_items
                .and_then(|mut m| m.remove(self.table()))
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 * (attempt + 1))).await;
        }
        Err(StoreError::Backend(
            "dynamodb: campaign rows left unprocessed after 10 tries".into(),
        ))
    }

    /// Every item of a query, page after page (`index`: a GSI, or the table), in key order
    /// (`forward`) or the reverse.
    pub(super) async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
        forward: bool,
    ) -> StoreResult<Vec<Item>> {
        self.query_pages(index, condition, vals, forward, u32::MAX)
            .await
    }

    /// Up to `limit` items of a query on the table, in key order.
    pub(super) async fn query_all_limit(
        &self,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
        limit: u32,
    ) -> StoreResult<Vec<Item>> {
        self.query_pages(None, condition, vals, true, limit).await
    }

    async fn query_pages(
        &self,
        index: Option<&str>,
        condition: &str,
        vals: Vec<(&str, AttributeValue)>,
        forward: bool,
        limit: u32,
    ) -> StoreResult<Vec<Item>> {
        let vals: HashMap<String, AttributeValue> =
            vals.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let want = limit.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
            let page = self
                .client
                .query()
                .table_name(self.table())
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(vals.clone()))
                .scan_index_forward(forward)
                .set_consistent_read(index.is_none().then_some(true))
                .set_limit(i32::try_from(want).ok().filter(|w| *w < 1000))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= limit as usize {
                return Ok(out);
            }
        }
    }
}

impl RowItem {
    /// The row as its campaign's status shows it: waiting rows of a cancelled campaign are
    /// cancelled.
    pub(super) fn seen(mut self, campaign_cancelled: bool) -> Self {
        if campaign_cancelled && self.row.state == RowState::Pending {
            self.row.state = RowState::Cancelled;
        }
        self
    }

    pub(super) fn outcome(&self) -> Option<crate::domain::Outcome> {
        self.row.outcome()
    }
}

impl DynamoStore {
    pub(super) async fn is_cancelled(&self, id: &CampaignId) -> StoreResult<bool> {
        Ok(self
            .campaign_item(id)
            .await?
            .and_then(|i| i.get("status").and_then(|v| v.as_s().ok()).cloned())
            .is_some_and(|s| s == CampaignStatus::Cancelled.as_str()))
    }

    pub(super) async fn row(&self, id: &CampaignId, index: u32) -> StoreResult<Option<RowItem>> {
        self.get_item(key(campaign_pk(id), &row_sk(index)))
            .await?
            .map(|i| RowItem::from_item(&i))
            .transpose()
    }

    pub(super) async fn all_rows(&self, id: &CampaignId) -> StoreResult<Vec<RowItem>> {
        self.rows_page(id, None, u32::MAX).await
    }

    pub(super) async fn rows_page(
        &self,
        id: &CampaignId,
        after: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<RowItem>> {
        let from = after.map_or_else(|| "ROW#".to_owned(), row_sk);
        let items = self
            .query_all_limit(
                "pk = :pk AND sk BETWEEN :from AND :to",
                vec![
                    (":pk", s(campaign_pk(id))),
                    (":from", s(from)),
                    (":to", s("ROW#~")),
                ],
                limit.saturating_add(u32::from(after.is_some())),
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for i in &items {
            let r = RowItem::from_item(i)?;
            if after.is_none_or(|a| r.row.index > a) {
                out.push(r);
            }
        }
        out.truncate(limit as usize);
        Ok(out)
    }

    /// The conditional update that moves a row from state `was` (at its read version) to `r`.
    pub(super) fn row_update(
        &self,
        id: &CampaignId,
        r: &RowItem,
        was: RowState,
    ) -> StoreResult<TransactWriteItem> {
        let outcome = r.row.attempts.iter().rev().find_map(|a| a.outcome.clone());
        let mut vals = vec![
            (":state", s(r.row.state.as_str())),
            (":attempts", s(r.row.attempts_json())),
            (":next", n(r.row.next_at_ms)),
            (":claimed", n(r.row.claimed_until_ms)),
            (":was", s(was.as_str())),
            (":v", n(r.version)),
            (":one", n(1)),
        ];
        let set_outcome = match outcome {
            Some(o) => {
                vals.push((":outcome", s(o)));
                ", outcome = :outcome"
            }
            None => "",
        };
        let u = Update::builder()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), &row_sk(r.row.index))))
            .update_expression(format!(
                "SET #state = :state, attempts = :attempts, next_at_ms = :next, \
                 claimed_until_ms = :claimed{set_outcome} ADD #v :one"
            ))
            .condition_expression("#state = :was AND #v = :v")
            .set_expression_attribute_names(names(&[("#state", "state"), ("#v", "v")]))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }
}
