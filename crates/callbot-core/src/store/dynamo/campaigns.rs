//! Campaigns on DynamoDB: not kept yet. Every method answers `Unsupported`, which the API turns
//! into `501 not_implemented`, so a deployment on DynamoDB refuses campaigns plainly instead of
//! accepting one that no dialer would run.

use super::DynamoStore;
use crate::domain::{CallSid, CampaignId, CampaignStatus, TenantId};
use crate::store::campaigns::{Campaign, CampaignCounts, CampaignRow, CampaignStore, Finish};
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;

const WHY: &str = "campaigns are kept by the SQLite store (callbot serve); the DynamoDB store does not keep them yet";

fn unsupported<T>() -> StoreResult<T> {
    Err(StoreError::Unsupported(WHY))
}

#[async_trait]
impl CampaignStore for DynamoStore {
    async fn create_campaign(&self, _: &Campaign, _: &[CampaignRow]) -> StoreResult<()> {
        unsupported()
    }
    async fn get_campaign(&self, _: &TenantId, _: &CampaignId) -> StoreResult<Option<Campaign>> {
        unsupported()
    }
    async fn list_campaigns(&self, _: &TenantId) -> StoreResult<Vec<Campaign>> {
        unsupported()
    }
    async fn set_campaign_status(
        &self,
        _: &TenantId,
        _: &CampaignId,
        _: &[CampaignStatus],
        _: CampaignStatus,
    ) -> StoreResult<Campaign> {
        unsupported()
    }
    async fn campaign_counts(&self, _: &CampaignId) -> StoreResult<CampaignCounts> {
        unsupported()
    }
    async fn campaign_rows(
        &self,
        _: &CampaignId,
        _: Option<u32>,
        _: u32,
    ) -> StoreResult<Vec<CampaignRow>> {
        unsupported()
    }
    /// Nothing to dial: no campaign is kept here (so a dialer over this store idles).
    async fn campaigns_at_work(&self) -> StoreResult<Vec<Campaign>> {
        Ok(Vec::new())
    }
    async fn active_rows(&self, _: &CampaignId) -> StoreResult<Vec<CampaignRow>> {
        unsupported()
    }
    async fn due_rows(&self, _: &CampaignId, _: i64, _: u32) -> StoreResult<Vec<CampaignRow>> {
        unsupported()
    }
    async fn claim_row(&self, _: &CampaignId, _: u32, _: i64, _: i64) -> StoreResult<bool> {
        unsupported()
    }
    async fn unclaim_row(&self, _: &CampaignId, _: u32, _: i64) -> StoreResult<bool> {
        unsupported()
    }
    async fn row_dialled(&self, _: &CampaignId, _: u32, _: &CallSid) -> StoreResult<bool> {
        unsupported()
    }
    async fn finish_attempt(&self, _: &CampaignId, _: u32, _: &Finish<'_>) -> StoreResult<bool> {
        unsupported()
    }
    async fn complete_if_done(&self, _: &CampaignId) -> StoreResult<bool> {
        unsupported()
    }
}
