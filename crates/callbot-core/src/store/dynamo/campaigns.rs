//! Campaigns on DynamoDB. A campaign is one item (`CAMPAIGN#<id>` / `CAMPAIGN`) holding its
//! settings, the count of its active rows (`active`), of its rows not yet finished (`open`) and
//! the released-rows cursor (`released`); each row is an item in the same partition
//! (`ROW#<index>`, zero-padded) with a version number. Every row move is one transaction: the
//! row's update conditioned on its state and version, and the campaign's counters conditioned
//! on its status and, for a claim, `active < max_concurrency`. So any number of dialers (Lambda
//! instances) never exceed the bound and never claim a row twice.
//!
//! Cancelling does not walk the rows: a cancelled campaign's waiting rows are shown (and
//! treated) as cancelled, and none is ever claimed, since a claim needs a running campaign.
//! Campaigns a dialer has work in carry `gsi2pk = CAMPAIGNS#WORK` until they complete, or are
//! cancelled with no call in progress.

use super::{
    DynamoStore, Item, backend, cancellation_codes, get_n, get_s, key, met, n, s, sdk_err,
};
use crate::domain::{
    BotId, CallSid, CallingWindow, CampaignId, CampaignStatus, RetryPolicy, RowState, TenantId,
};
use crate::store::campaigns::{
    Attempt, Campaign, CampaignCounts, CampaignRow, CampaignStore, Finish, status_conflict,
};
use crate::store::{StoreError, StoreResult, corrupt};
use crate::time_fmt;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use std::collections::HashMap;

pub(super) const AT_WORK: &str = "CAMPAIGNS#WORK";

pub(super) fn campaign_pk(id: &CampaignId) -> String {
    format!("CAMPAIGN#{id}")
}

fn tenant_campaigns(t: &TenantId) -> String {
    format!("TENANT#{t}#CAMPAIGNS")
}

fn campaign_item(c: &Campaign) -> Item {
    let mut item = key(campaign_pk(&c.id), "CAMPAIGN");
    item.insert("gsi1pk".into(), s(tenant_campaigns(&c.tenant)));
    item.insert("gsi1sk".into(), s(c.id.as_str()));
    if !c.status.is_final() {
        item.insert("gsi2pk".into(), s(AT_WORK));
        item.insert("gsi2sk".into(), s(c.id.as_str()));
    }
    item.insert("id".into(), s(c.id.as_str()));
    item.insert("tenant".into(), s(c.tenant.as_str()));
    item.insert("bot_id".into(), s(c.bot.as_str()));
    item.insert("name".into(), s(&c.name));
    item.insert("calling_window".into(), s(c.window.to_json().to_string()));
    item.insert("retry".into(), s(c.retry.to_json().to_string()));
    item.insert("max_concurrency".into(), n(c.max_concurrency));
    item.insert("status".into(), s(c.status.as_str()));
    item.insert("row_count".into(), n(c.rows));
    item.insert("created_at".into(), s(time_fmt::rfc3339(c.created_at)));
    item.insert("updated_at".into(), s(time_fmt::rfc3339(c.updated_at)));
    item.insert("active".into(), n(0));
    item.insert("open".into(), n(c.rows));
    item.insert("released".into(), n(0));
    item
}

fn campaign_from_item(item: &Item) -> StoreResult<Campaign> {
    let json = |name: &str| -> StoreResult<serde_json::Value> {
        serde_json::from_str(get_s(item, name)?).map_err(corrupt)
    };
    let time = |name: &str| -> StoreResult<time::OffsetDateTime> {
        time_fmt::parse_rfc3339(get_s(item, name)?).ok_or_else(|| corrupt(name.to_owned()))
    };
    let count =
        |name: &str| -> StoreResult<u32> { u32::try_from(get_n(item, name)?).map_err(corrupt) };
    Ok(Campaign {
        id: CampaignId::parse(get_s(item, "id")?).map_err(corrupt)?,
        tenant: TenantId::parse(get_s(item, "tenant")?).map_err(corrupt)?,
        bot: BotId::parse(get_s(item, "bot_id")?).map_err(corrupt)?,
        name: get_s(item, "name")?.to_owned(),
        window: CallingWindow::parse(&json("calling_window")?).map_err(corrupt)?,
        retry: RetryPolicy::parse(&json("retry")?).map_err(corrupt)?,
        max_concurrency: count("max_concurrency")?,
        status: CampaignStatus::parse(get_s(item, "status")?).map_err(corrupt)?,
        rows: count("row_count")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

pub(super) fn names(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

pub(super) fn values(
    pairs: Vec<(&str, AttributeValue)>,
) -> Option<HashMap<String, AttributeValue>> {
    Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl DynamoStore {
    pub(super) async fn campaign_item(&self, id: &CampaignId) -> StoreResult<Option<Item>> {
        self.get_item(key(campaign_pk(id), "CAMPAIGN")).await
    }

    async fn campaign_by_id(&self, id: &CampaignId) -> StoreResult<Option<Campaign>> {
        self.campaign_item(id)
            .await?
            .map(|i| campaign_from_item(&i))
            .transpose()
    }

    /// The campaign's counters update of a row move, conditioned as `condition` says.
    fn campaign_update(
        &self,
        id: &CampaignId,
        update: &str,
        condition: Option<&str>,
        attr_names: &[(&str, &str)],
        vals: Vec<(&str, AttributeValue)>,
    ) -> StoreResult<TransactWriteItem> {
        let u = Update::builder()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), "CAMPAIGN")))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(names(attr_names).filter(|m| !m.is_empty()))
            .set_expression_attribute_values(values(vals))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    /// Runs a row move: false when a condition did not hold (the row or the campaign is not as
    /// the move needs). Retried while it only collides with another transaction.
    async fn row_move(&self, items: Vec<TransactWriteItem>) -> StoreResult<bool> {
        for attempt in 0..8u32 {
            match self.transact(items.clone()).await {
                Ok(()) => return Ok(true),
                Err(e) => match cancellation_codes(&e) {
                    Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                        return Ok(false);
                    }
                    Some(codes) if codes.iter().any(|c| c == "TransactionConflict") => {
                        let jitter = u64::from(rand_jitter()) % 20;
                        tokio::time::sleep(std::time::Duration::from_millis(
                            10 * u64::from(attempt + 1) + jitter,
                        ))
                        .await;
                    }
                    _ => return Err(sdk_err(e)),
                },
            }
        }
        Err(StoreError::Backend(
            "dynamodb: a campaign row move kept colliding with others".into(),
        ))
    }

    /// Takes the campaign out of the dialers' index once it is cancelled with no call left.
    async fn retire_if_idle(&self, id: &CampaignId) -> StoreResult<()> {
        let res = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), "CAMPAIGN")))
            .update_expression("REMOVE gsi2pk, gsi2sk")
            .condition_expression("#status = :cancelled AND active = :zero")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s(CampaignStatus::Cancelled.as_str()))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        met(res)?;
        Ok(())
    }
}

fn rand_jitter() -> u32 {
    let nanos = time::OffsetDateTime::now_utc().nanosecond();
    nanos ^ (nanos >> 7)
}

#[async_trait]
impl CampaignStore for DynamoStore {
    async fn create_campaign(&self, campaign: &Campaign, rows: &[CampaignRow]) -> StoreResult<()> {
        // The rows first, the campaign last: until its item exists nothing sees the rows.
        self.put_rows(&campaign.id, rows).await?;
        let res = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(campaign_item(campaign)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match met(res)? {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict("campaign id already taken".into())),
        }
    }

    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> StoreResult<Option<Campaign>> {
        Ok(self
            .campaign_by_id(id)
            .await?
            .filter(|c| &c.tenant == tenant))
    }

    async fn list_campaigns(&self, tenant: &TenantId) -> StoreResult<Vec<Campaign>> {
        let items = self
            .query_all(
                Some("gsi1"),
                "gsi1pk = :pk",
                vec![(":pk", s(tenant_campaigns(tenant)))],
                false,
            )
            .await?;
        items.iter().map(campaign_from_item).collect()
    }

    async fn set_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
    ) -> StoreResult<Campaign> {
        let allowed: Vec<String> = (0..from.len()).map(|i| format!(":f{i}")).collect();
        let mut vals: Vec<(String, AttributeValue)> = from
            .iter()
            .zip(&allowed)
            .map(|(f, k)| (k.clone(), s(f.as_str())))
            .collect();
        let now = time_fmt::now();
        vals.push((":to".into(), s(to.as_str())));
        vals.push((":now".into(), s(time_fmt::rfc3339(now))));
        vals.push((":t".into(), s(tenant.as_str())));
        let res = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), "CAMPAIGN")))
            .update_expression("SET #status = :to, updated_at = :now")
            .condition_expression(format!(
                "tenant = :t AND #status IN ({})",
                allowed.join(", ")
            ))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(vals.into_iter().collect()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match met(res)? {
            Some(out) => out.attributes.unwrap_or_default(),
            None => {
                let current = self
                    .get_campaign(tenant, id)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                return Err(status_conflict(current.status, to));
            }
        };
        if to == CampaignStatus::Cancelled {
            self.retire_if_idle(id).await?;
        }
        campaign_from_item(&item)
    }

    async fn campaign_counts(&self, id: &CampaignId) -> StoreResult<CampaignCounts> {
        let cancelled = self.is_cancelled(id).await?;
        let mut counts = CampaignCounts::default();
        for row in self.all_rows(id).await? {
            let row = row.seen(cancelled);
            counts.add(row.row.state, row.outcome(), 1);
        }
        Ok(counts)
    }

    async fn campaign_rows(
        &self,
        id: &CampaignId,
        after: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>> {
        let cancelled = self.is_cancelled(id).await?;
        let rows = self.rows_page(id, after, limit).await?;
        Ok(rows.into_iter().map(|r| r.seen(cancelled).row).collect())
    }

    async fn campaigns_at_work(&self) -> StoreResult<Vec<Campaign>> {
        let items = self
            .query_all(
                Some("gsi2"),
                "gsi2pk = :pk",
                vec![(":pk", s(AT_WORK))],
                true,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for i in &items {
            // The index is eventually consistent: the item itself says what holds now.
            let id = CampaignId::parse(get_s(i, "id")?).map_err(corrupt)?;
            if let Some(c) = self.campaign_by_id(&id).await? {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn active_rows(&self, id: &CampaignId) -> StoreResult<Vec<CampaignRow>> {
        Ok(self
            .all_rows(id)
            .await?
            .into_iter()
            .filter(|r| r.row.state.is_active())
            .map(|r| r.row)
            .collect())
    }

    async fn due_rows(
        &self,
        id: &CampaignId,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CampaignRow>> {
        if self.is_cancelled(id).await? {
            return Ok(Vec::new());
        }
        Ok(self
            .all_rows(id)
            .await?
            .into_iter()
            .filter(|r| r.row.state == RowState::Pending && r.row.next_at_ms <= now_ms)
            .take(limit as usize)
            .map(|r| r.row)
            .collect())
    }

    async fn claim_row(
        &self,
        id: &CampaignId,
        index: u32,
        now_ms: i64,
        claim_until_ms: i64,
    ) -> StoreResult<bool> {
        let Some(mut r) = self.row(id, index).await? else {
            return Ok(false);
        };
        if r.row.state != RowState::Pending || r.row.next_at_ms > now_ms {
            return Ok(false);
        }
        r.row.attempts.push(Attempt {
            call_sid: None,
            at_ms: now_ms,
            outcome: None,
        });
        r.row.state = RowState::Dialling;
        r.row.claimed_until_ms = claim_until_ms;
        let items = vec![
            self.row_update(id, &r, RowState::Pending)?,
            self.campaign_update(
                id,
                "ADD active :one",
                Some("#status = :running AND active < max_concurrency"),
                &[("#status", "status")],
                vec![
                    (":one", n(1)),
                    (":running", s(CampaignStatus::Running.as_str())),
                ],
            )?,
        ];
        self.row_move(items).await
    }

    async fn unclaim_row(&self, id: &CampaignId, index: u32, next_at_ms: i64) -> StoreResult<bool> {
        let Some(mut r) = self.row(id, index).await? else {
            return Ok(false);
        };
        if r.row.state != RowState::Dialling {
            return Ok(false);
        }
        r.row.attempts.pop();
        r.row.state = RowState::Pending;
        r.row.next_at_ms = next_at_ms;
        r.row.claimed_until_ms = 0;
        let items = vec![
            self.row_update(id, &r, RowState::Dialling)?,
            self.campaign_update(id, "ADD active :minus", None, &[], vec![(":minus", n(-1))])?,
        ];
        self.row_move(items).await
    }

    async fn row_dialled(&self, id: &CampaignId, index: u32, sid: &CallSid) -> StoreResult<bool> {
        let Some(mut r) = self.row(id, index).await? else {
            return Ok(false);
        };
        if r.row.state != RowState::Dialling {
            return Ok(false);
        }
        let Some(last) = r.row.attempts.last_mut() else {
            return Ok(false);
        };
        last.call_sid = Some(sid.to_string());
        r.row.state = RowState::Calling;
        r.row.claimed_until_ms = 0;
        let items = vec![self.row_update(id, &r, RowState::Dialling)?];
        self.row_move(items).await
    }

    async fn finish_attempt(
        &self,
        id: &CampaignId,
        index: u32,
        finish: &Finish<'_>,
    ) -> StoreResult<bool> {
        let Some(mut r) = self.row(id, index).await? else {
            return Ok(false);
        };
        let was = r.row.state;
        let sid = finish.call_sid.map(|s| s.to_string());
        let Some(last) = r.row.attempts.last_mut() else {
            return Ok(false);
        };
        if !was.is_active() || (sid.is_some() && last.call_sid != sid) {
            return Ok(false);
        }
        last.outcome = Some(finish.outcome.as_str().to_owned());
        // A cancelled campaign's row is not tried again.
        let cancelled = self.is_cancelled(id).await?;
        let retry_at = finish.retry_at_ms.filter(|_| !cancelled);
        let open = if let Some(t) = retry_at {
            r.row.state = RowState::Pending;
            r.row.next_at_ms = t;
            0
        } else {
            r.row.state = RowState::Done;
            -1
        };
        r.row.claimed_until_ms = 0;
        let items = vec![
            self.row_update(id, &r, was)?,
            self.campaign_update(
                id,
                "ADD active :minus, #open :open",
                None,
                &[("#open", "open")],
                vec![(":minus", n(-1)), (":open", n(open))],
            )?,
        ];
        let moved = self.row_move(items).await?;
        if moved && cancelled {
            self.retire_if_idle(id).await?;
        }
        Ok(moved)
    }

    async fn complete_if_done(&self, id: &CampaignId) -> StoreResult<bool> {
        let res = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), "CAMPAIGN")))
            .update_expression("SET #status = :completed, updated_at = :now REMOVE gsi2pk, gsi2sk")
            .condition_expression("#status = :running AND #open = :zero AND active = :zero")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":completed", s(CampaignStatus::Completed.as_str()))
            .expression_attribute_values(":running", s(CampaignStatus::Running.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", s(time_fmt::rfc3339(time_fmt::now())))
            .send()
            .await;
        Ok(met(res)?.is_some())
    }

    async fn release_rows(
        &self,
        id: &CampaignId,
        n_rows: u32,
    ) -> StoreResult<std::ops::Range<u32>> {
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(campaign_pk(id), "CAMPAIGN")))
            .update_expression("ADD released :n")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":n", n(n_rows))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match met(out)? {
            Some(o) => o.attributes.unwrap_or_default(),
            None => {
                return Err(StoreError::NotFound);
            }
        };
        let total = u32::try_from(get_n(&item, "row_count")?).map_err(corrupt)?;
        let after = u32::try_from(get_n(&item, "released")?).map_err(corrupt)?;
        let before = after.saturating_sub(n_rows);
        Ok(before.min(total)..after.min(total))
    }
}
