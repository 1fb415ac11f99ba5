//! The in-memory directory of merchants and endpoints.
//!
//! Loaded from the store at start and updated after each committed change,
//! so authenticating a request and choosing an event's endpoints never touch
//! the database. The store stays the source of truth.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ipn_core::id::{EndpointId, MerchantId};

use crate::model::{Endpoint, Merchant};

#[derive(Debug, Default)]
pub struct Directory {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    merchants: HashMap<MerchantId, Arc<Merchant>>,
    by_key_hash: HashMap<String, MerchantId>,
    endpoints: HashMap<EndpointId, Arc<Endpoint>>,
    /// Each merchant's endpoints, oldest first: fan-out reads this per event.
    by_merchant: HashMap<MerchantId, Vec<EndpointId>>,
}

impl Directory {
    pub fn load(merchants: Vec<Merchant>, endpoints: Vec<Endpoint>) -> Self {
        let directory = Self::default();
        for merchant in merchants {
            directory.put_merchant(merchant);
        }
        for endpoint in endpoints {
            directory.put_endpoint(endpoint);
        }
        directory
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put_merchant(&self, merchant: Merchant) {
        let mut inner = self.write();
        inner
            .by_key_hash
            .insert(merchant.api_key_hash.clone(), merchant.id);
        inner.merchants.insert(merchant.id, Arc::new(merchant));
    }

    pub fn merchant(&self, id: MerchantId) -> Option<Arc<Merchant>> {
        self.read().merchants.get(&id).cloned()
    }

    pub fn merchant_by_key_hash(&self, hash: &str) -> Option<MerchantId> {
        self.read().by_key_hash.get(hash).copied()
    }

    pub fn merchants(&self) -> Vec<Arc<Merchant>> {
        let mut all: Vec<_> = self.read().merchants.values().cloned().collect();
        all.sort_by_key(|m| (m.created_at, m.id));
        all
    }

    pub fn put_endpoint(&self, endpoint: Endpoint) {
        let mut inner = self.write();
        let ids = inner.by_merchant.entry(endpoint.merchant_id).or_default();
        if !ids.contains(&endpoint.id) {
            ids.push(endpoint.id);
        }
        inner.endpoints.insert(endpoint.id, Arc::new(endpoint));
    }

    pub fn endpoint(&self, id: EndpointId) -> Option<Arc<Endpoint>> {
        self.read().endpoints.get(&id).cloned()
    }

    /// A merchant's endpoints, oldest first.
    /// The merchant's enabled endpoints as they are now: where the events of
    /// a payment or subscription change go (each to those that want it).
    pub fn subscribers(&self, merchant: MerchantId) -> Vec<Endpoint> {
        self.endpoints_of(merchant)
            .iter()
            .filter(|e| e.is_enabled())
            .map(|e| (**e).clone())
            .collect()
    }

    pub fn endpoints_of(&self, merchant: MerchantId) -> Vec<Arc<Endpoint>> {
        let inner = self.read();
        inner
            .by_merchant
            .get(&merchant)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.endpoints.get(id).cloned())
            .collect()
    }

    /// Applies `change` to the cached endpoint, if present.
    pub fn update_endpoint(&self, id: EndpointId, change: impl FnOnce(&mut Endpoint)) {
        let mut inner = self.write();
        if let Some(current) = inner.endpoints.get_mut(&id) {
            change(Arc::make_mut(current));
        }
    }
}
