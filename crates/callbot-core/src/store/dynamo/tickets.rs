//! DynamoDB adapter of the single-use tickets: item `TICKET#{hash}` / `TICKET`, consumed by one
//! conditional `DeleteItem` returning the old item (atomic across processes); TTL removes the
//! ones never used.

use super::{DynamoStore, get_n, get_s, key, n, s, sdk_err};
use crate::apikey::KeyHash;
use crate::domain::TenantId;
use crate::store::{StoreResult, TicketPurpose, TicketStore, corrupt};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

fn ticket_key(hash: &KeyHash) -> super::Item {
    key(format!("TICKET#{}", hash.as_str()), "TICKET")
}

#[async_trait]
impl TicketStore for DynamoStore {
    async fn put_ticket(
        &self,
        hash: &KeyHash,
        tenant: &TenantId,
        purpose: &TicketPurpose,
        expires_ms: u64,
    ) -> StoreResult<()> {
        let mut item = ticket_key(hash);
        item.insert("tenant".into(), s(tenant.as_str()));
        item.insert("purpose".into(), s(purpose.key()));
        item.insert("expires_ms".into(), n(expires_ms));
        item.insert("expires_at".into(), n(expires_ms / 1000 + 3600));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn take_ticket(
        &self,
        hash: &KeyHash,
        purpose: &TicketPurpose,
        now_ms: u64,
    ) -> StoreResult<Option<TenantId>> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(ticket_key(hash)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_err)?;
        let Some(item) = out.attributes() else {
            return Ok(None);
        };
        let expires = get_n(item, "expires_ms")?;
        if get_s(item, "purpose")? != purpose.key() || (expires as u64) < now_ms {
            return Ok(None);
        }
        TenantId::parse(get_s(item, "tenant")?)
            .map(Some)
            .map_err(corrupt)
    }
}
