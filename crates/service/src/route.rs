//! Where a function's payloads travel: inline in the messages, or through a
//! store it holds. The transfer setting (`TRANSFER_TYPE`) becomes a route at
//! start-up, where a stored transfer without a store is refused.

use std::sync::Arc;

use stacking_storage::BlobStore;

use crate::error::StepError;
use crate::settings::Transfer;

/// Which kind of store a stored transfer goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `TRANSFER_TYPE=S3`: an S3-API object store (or the embedded one).
    S3,
    /// `TRANSFER_TYPE=ELASTICACHE`: a Redis server.
    ElastiCache,
}

/// Where a function's payloads travel. A stored transfer holds its store, so
/// "S3 without a store" cannot be built, let alone found at request time.
#[derive(Debug, Clone)]
pub enum Route {
    /// Inside the messages' bytes fields; a key in a request is refused.
    Inline,
    /// Through a store; the messages carry keys.
    Store(StoreKind, Arc<dyn BlobStore>),
}

impl Route {
    /// The route `transfer` names, with `store` when it needs one.
    pub fn new(transfer: Transfer, store: Option<Arc<dyn BlobStore>>) -> Result<Self, StepError> {
        let kind = match transfer {
            Transfer::Inline => return Ok(Route::Inline),
            Transfer::S3 => StoreKind::S3,
            Transfer::ElastiCache => StoreKind::ElastiCache,
        };
        match store {
            Some(store) => Ok(Route::Store(kind, store)),
            None => Err(StepError::bad(format!(
                "TRANSFER_TYPE={} needs a store",
                transfer.as_str()
            ))),
        }
    }

    /// `TRANSFER_TYPE=S3` through `store`.
    pub fn s3(store: Arc<dyn BlobStore>) -> Self {
        Route::Store(StoreKind::S3, store)
    }

    /// `TRANSFER_TYPE=ELASTICACHE` through `store`.
    pub fn elasticache(store: Arc<dyn BlobStore>) -> Self {
        Route::Store(StoreKind::ElastiCache, store)
    }

    /// The transfer setting this route implements.
    pub fn transfer(&self) -> Transfer {
        match self {
            Route::Inline => Transfer::Inline,
            Route::Store(StoreKind::S3, _) => Transfer::S3,
            Route::Store(StoreKind::ElastiCache, _) => Transfer::ElastiCache,
        }
    }

    /// The store, if payloads go through one.
    pub fn store(&self) -> Option<&Arc<dyn BlobStore>> {
        match self {
            Route::Inline => None,
            Route::Store(_, store) => Some(store),
        }
    }
}
