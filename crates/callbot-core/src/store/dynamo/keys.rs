//! DynamoDB adapter of key management: a key item carries `gsi1pk = TENANT#<t>#KEYS` and
//! `gsi1sk = <hash>`, so a tenant's keys are one index query; the operator's all-tenant listing
//! is a scan (a CLI command, not a request path).

use super::{DynamoStore, Item, get_s, key, met, s, sdk_err};
use crate::apikey::KeyHash;
use crate::domain::TenantId;
use crate::store::keys::{ApiKeyInfo, KeyStore, id_prefix, key_id};
use crate::store::{StoreResult, corrupt};
use async_trait::async_trait;

pub(super) fn tenant_keys(t: &TenantId) -> String {
    format!("TENANT#{t}#KEYS")
}

fn info(item: &Item) -> StoreResult<(KeyHash, ApiKeyInfo)> {
    let pk = get_s(item, "pk")?;
    let hash = pk
        .strip_prefix("APIKEY#")
        .and_then(KeyHash::from_stored)
        .ok_or_else(|| corrupt("api key item"))?;
    let info = ApiKeyInfo {
        id: key_id(&hash),
        tenant: TenantId::parse(get_s(item, "tenant")?).map_err(corrupt)?,
        label: get_s(item, "label")?.to_owned(),
        created_at: get_s(item, "created_at")?.to_owned(),
    };
    Ok((hash, info))
}

impl DynamoStore {
    async fn key_items(
        &self,
        tenant: Option<&TenantId>,
    ) -> StoreResult<Vec<(KeyHash, ApiKeyInfo)>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (items, last) = match tenant {
                Some(t) => {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name("gsi1")
                        .key_condition_expression("gsi1pk = :p")
                        .expression_attribute_values(":p", s(tenant_keys(t)))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(sdk_err)?;
                    (out.items.unwrap_or_default(), out.last_evaluated_key)
                }
                None => {
                    let out = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .filter_expression("sk = :k")
                        .expression_attribute_values(":k", s("APIKEY"))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(sdk_err)?;
                    (out.items.unwrap_or_default(), out.last_evaluated_key)
                }
            };
            for item in &items {
                found.push(info(item)?);
            }
            match last {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        found.sort_by(|a, b| (&a.1.created_at, &a.1.id).cmp(&(&b.1.created_at, &b.1.id)));
        Ok(found)
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn list_api_keys(&self, tenant: Option<&TenantId>) -> StoreResult<Vec<ApiKeyInfo>> {
        Ok(self
            .key_items(tenant)
            .await?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    async fn revoke_api_key(&self, tenant: Option<&TenantId>, id: &str) -> StoreResult<bool> {
        if id_prefix(id).is_none() {
            return Ok(false);
        }
        let Some((hash, found)) = self
            .key_items(tenant)
            .await?
            .into_iter()
            .find(|(_, i)| i.id == id)
        else {
            return Ok(false);
        };
        // Conditional on the owner, so a race with another tenant's identical prefix cannot
        // delete a key that is not theirs.
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("APIKEY#{}", hash.as_str()), "APIKEY")))
            .condition_expression("tenant = :t")
            .expression_attribute_values(":t", s(found.tenant.as_str()))
            .send()
            .await;
        Ok(met(res)?.is_some())
    }
}
