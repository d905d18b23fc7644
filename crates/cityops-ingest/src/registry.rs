//! The device registry: which devices the platform accepts readings from, where they are, what they are.
//!
//! The store holds the truth; this keeps a copy for listing, and tells the shard that owns a device about
//! it through that shard's queue, so the hot path looks devices up in its own map without a shared lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use cityops_bus::Bus;
use cityops_core::{Device, DeviceId, EventData, GeoPoint, GridPlace};
use cityops_gis::GridIndex;
use cityops_store::{DeviceSource, Registered, Store, StoreError};
use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::pipeline::{ShardMsg, shard_of};
use crate::stats::IngestStats;

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ingestion is shutting down")]
    ShuttingDown,
}

pub struct Registry {
    store: Store,
    bus: Bus,
    stats: Arc<IngestStats>,
    devices: RwLock<BTreeMap<DeviceId, Device>>,
    shards: Vec<mpsc::Sender<ShardMsg>>,
    /// Device kinds that have rules, to warn about devices no rule watches.
    known_kinds: Vec<String>,
    /// The unit grid, when one is configured: every device gets its cell.
    grid: Option<Arc<GridIndex>>,
}

impl Registry {
    pub(crate) fn new(
        store: Store,
        bus: Bus,
        stats: Arc<IngestStats>,
        shards: Vec<mpsc::Sender<ShardMsg>>,
        known_kinds: Vec<String>,
        grid: Option<Arc<GridIndex>>,
    ) -> Self {
        Self {
            store,
            bus,
            stats,
            devices: RwLock::new(BTreeMap::new()),
            shards,
            known_kinds,
            grid,
        }
    }

    /// The unit cell a device stands in (device positions are WGS-84), or `None` without a grid.
    pub fn place_of(&self, device: &Device) -> Option<GridPlace> {
        let grid = self.grid.as_ref()?;
        let point = GeoPoint {
            lon: device.lon,
            lat: device.lat,
        };
        Some(grid.locate_wgs84(point).into())
    }

    /// Registers a device: stored, handed to its shard, announced on the bus when new or changed.
    pub async fn register(
        &self,
        device: Device,
        source: DeviceSource,
    ) -> Result<Registered, RegisterError> {
        if GeoPoint::new(device.lon, device.lat).is_err() {
            return Err(RegisterError::Invalid(format!(
                "device {}: lon {} / lat {} is not a WGS-84 position",
                device.id, device.lon, device.lat
            )));
        }
        let place = self.place_of(&device);
        let outcome = self
            .store
            .register_device(
                &device,
                place.as_ref(),
                source,
                Utc::now().timestamp_millis(),
            )
            .await?;
        if outcome != Registered::Unchanged || !self.devices.read().contains_key(&device.id) {
            self.adopt(device.clone()).await?;
        }
        if outcome != Registered::Unchanged {
            if !self.known_kinds.iter().any(|k| k == device.kind.as_str()) {
                tracing::warn!(device = %device.id, kind = %device.kind, "no rule watches devices of this kind");
            }
            self.bus.publish(EventData::DeviceRegistered(device));
        }
        Ok(outcome)
    }

    /// Takes a device that is already stored into the running pipeline.
    pub(crate) async fn adopt(&self, device: Device) -> Result<(), RegisterError> {
        let shard = &self.shards[shard_of(device.id.as_str(), self.shards.len())];
        let place = self.place_of(&device);
        shard
            .send(ShardMsg::Device(device.clone(), place))
            .await
            .map_err(|_| RegisterError::ShuttingDown)?;
        let mut devices = self.devices.write();
        devices.insert(device.id.clone(), device);
        self.stats.devices.set(devices.len() as i64);
        Ok(())
    }

    pub fn list(&self) -> Vec<Device> {
        self.devices.read().values().cloned().collect()
    }

    pub fn get(&self, id: &DeviceId) -> Option<Device> {
        self.devices.read().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.devices.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
