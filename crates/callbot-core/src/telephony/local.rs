//! Local telephony: hands out numbers from the reserved `+1 555 01xxxxx` pool (555 is not a real
//! North American area code), persisted through a store sequence so no number is ever given twice.

use super::{NumberRequest, ProvisionedNumber, Telephony, TelephonyError};
use crate::domain::{BotId, PhoneNumber};
use crate::store::Store;
use async_trait::async_trait;
use std::sync::Arc;

const POOL_BASE: u64 = 15_550_100_000;
const POOL_SIZE: u64 = 100_000;
const SEQUENCE: &str = "local-numbers";

#[derive(Debug, Clone)]
pub struct LocalTelephony {
    store: Arc<dyn Store>,
}

impl LocalTelephony {
    pub fn new(store: Arc<dyn Store>) -> Self {
        LocalTelephony { store }
    }
}

#[async_trait]
impl Telephony for LocalTelephony {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn provision_number(
        &self,
        _bot: &BotId,
        request: &NumberRequest,
    ) -> Result<ProvisionedNumber, TelephonyError> {
        if let Some(country) = &request.country
            && !country.eq_ignore_ascii_case("US")
        {
            return Err(TelephonyError::NoNumbers(format!(
                "the local pool only has US numbers (+1555), not {country}"
            )));
        }
        let n = self
            .store
            .next_sequence(SEQUENCE)
            .await
            .map_err(|e| TelephonyError::Unavailable(e.to_string()))?;
        if n > POOL_SIZE {
            return Err(TelephonyError::NoNumbers(
                "the local +1555 pool is exhausted".into(),
            ));
        }
        let raw = format!("+{}", POOL_BASE + n - 1);
        let number =
            PhoneNumber::parse(&raw).map_err(|e| TelephonyError::Unavailable(e.message))?;
        Ok(ProvisionedNumber {
            number,
            sid: format!("LOCAL{n:08}"),
        })
    }

    async fn release_number(&self, _number: &ProvisionedNumber) -> Result<(), TelephonyError> {
        // Local numbers are never reused, so releasing only forgets the mapping (done by the store).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn numbers_are_never_given_twice_even_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = {
            let t = LocalTelephony::new(Arc::new(SqliteStore::open(&path).unwrap()));
            let a = t
                .provision_number(&BotId::generate(), &NumberRequest::default())
                .await
                .unwrap();
            let b = t
                .provision_number(&BotId::generate(), &NumberRequest::default())
                .await
                .unwrap();
            assert_ne!(a.number, b.number);
            assert_eq!(a.number.as_str(), "+15550100000");
            b
        };
        let t = LocalTelephony::new(Arc::new(SqliteStore::open(&path).unwrap()));
        let c = t
            .provision_number(&BotId::generate(), &NumberRequest::default())
            .await
            .unwrap();
        assert_ne!(c.number, first.number);
        assert_eq!(c.number.as_str(), "+15550100002");
        let err = t
            .provision_number(
                &BotId::generate(),
                &NumberRequest {
                    country: Some("GB".into()),
                    area_code: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TelephonyError::NoNumbers(_)));
    }
}
