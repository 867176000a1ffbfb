//! DynamoDB adapter of the leases: a scope's `limit` places are items `LEASE#<scope>` /
//! `SLOT#<i>` holding a holder and an expiry; a place is taken with a conditional write (free,
//! or expired), so two holders can never hold the same one. TTL removes lapsed places.

use super::{DynamoStore, Item, get_n, get_s, key, n, s, sdk_err};
use crate::store::StoreResult;
use crate::store::leases::{LeaseDecision, LeaseStore};
use async_trait::async_trait;

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

impl DynamoStore {
    /// The scope's places as (slot index, holder, until).
    async fn lease_slots(&self, scope: &str) -> StoreResult<Vec<(u32, String, i64)>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(format!("LEASE#{scope}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        let mut slots = Vec::new();
        for item in out.items() {
            let Some(i) = get_s(item, "sk")?
                .strip_prefix("SLOT#")
                .and_then(|i| i.parse().ok())
            else {
                continue;
            };
            slots.push((
                i,
                get_s(item, "holder")?.to_owned(),
                get_n(item, "until_ms")?,
            ));
        }
        Ok(slots)
    }

    async fn update_holder(
        &self,
        scope: &str,
        slot: u32,
        holder: &str,
        until_ms: Option<u64>,
    ) -> StoreResult<bool> {
        let k = key(format!("LEASE#{scope}"), &format!("SLOT#{slot}"));
        let res = match until_ms {
            Some(until) => self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(k))
                .update_expression("SET until_ms = :u, expires_at = :e")
                .condition_expression("holder = :h")
                .expression_attribute_values(":u", n(until))
                .expression_attribute_values(":e", n(until / 1000 + 60))
                .expression_attribute_values(":h", s(holder))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let e = e.into_service_error();
                    (is_condition_failure(&e), e.to_string())
                }),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(k))
                .condition_expression("holder = :h")
                .expression_attribute_values(":h", s(holder))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let e = e.into_service_error();
                    (is_condition_failure(&e), e.to_string())
                }),
        };
        match res {
            Ok(()) => Ok(true),
            Err((true, _)) => Ok(false),
            Err((false, e)) => Err(super::backend(e)),
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        scope: &str,
        holder: &str,
        limit: u32,
        until_ms: u64,
        now_ms: u64,
    ) -> StoreResult<LeaseDecision> {
        let slots = self.lease_slots(scope).await?;
        if let Some((i, _, _)) = slots.iter().find(|(_, h, _)| h == holder)
            && self
                .update_holder(scope, *i, holder, Some(until_ms))
                .await?
        {
            return Ok(LeaseDecision::Acquired);
        }
        let busy = |i: u32| {
            slots
                .iter()
                .any(|(j, _, until)| *j == i && *until > now_ms as i64)
        };
        for i in (0..limit).filter(|i| !busy(*i)) {
            let mut item: Item = key(format!("LEASE#{scope}"), &format!("SLOT#{i}"));
            item.insert("holder".into(), s(holder));
            item.insert("until_ms".into(), n(until_ms));
            item.insert("expires_at".into(), n(until_ms / 1000 + 60));
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(until_ms) OR until_ms <= :now")
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(LeaseDecision::Acquired),
                Err(e) if e.as_service_error().is_some_and(is_condition_failure) => {}
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Ok(LeaseDecision::Full)
    }

    async fn renew_lease(&self, scope: &str, holder: &str, until_ms: u64) -> StoreResult<bool> {
        for (i, h, _) in self.lease_slots(scope).await? {
            if h == holder {
                return self.update_holder(scope, i, holder, Some(until_ms)).await;
            }
        }
        Ok(false)
    }

    async fn count_leases(&self, scope: &str, now_ms: u64) -> StoreResult<u32> {
        let live = self
            .lease_slots(scope)
            .await?
            .iter()
            .filter(|(_, _, until)| *until > now_ms as i64)
            .count();
        Ok(u32::try_from(live).unwrap_or(u32::MAX))
    }

    async fn lease_holders(&self, scope: &str, now_ms: u64) -> StoreResult<Vec<String>> {
        let mut live: Vec<_> = self
            .lease_slots(scope)
            .await?
            .into_iter()
            .filter(|(_, _, until)| *until > now_ms as i64)
            .collect();
        live.sort_by_key(|(_, _, until)| std::cmp::Reverse(*until));
        Ok(live.into_iter().map(|(_, h, _)| h).collect())
    }

    async fn release_lease(&self, scope: &str, holder: &str) -> StoreResult<()> {
        for (i, h, _) in self.lease_slots(scope).await? {
            if h == holder {
                self.update_holder(scope, i, holder, None).await?;
            }
        }
        Ok(())
    }
}
