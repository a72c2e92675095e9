//! Which shards this matching instance may pair.
//!
//! - `AllShards`: one instance owns everything (the embedded mode).
//! - `KvLeases`: instances share the shards through leases in a NATS key-value bucket whose
//!   entries expire after the TTL (the bucket's max age). Each instance announces itself with a
//!   `member.<id>` key, takes free shards (`create`, which only succeeds if the key is absent) up to
//!   its fair share of the live members, renews what it holds by compare-and-set on the revision,
//!   and releases shards beyond its share. A dead instance stops renewing, its keys expire, and
//!   the others take its shards over within about one TTL.
//!
//! Fencing, in two layers:
//! - an instance pairs a shard only while its last successful renewal is younger than half the TTL,
//!   and another can acquire the shard only after the key is gone: expired, a full TTL after that
//!   renewal (a dead or cut-off owner), or deleted by its owner. An owner deletes a key only after
//!   it stopped pairing the shard: at shutdown, when its ticks have ended, and when it gives a
//!   shard up to rebalance, one round (a quarter TTL) after it stopped pairing it — so the new
//!   owner takes over within about a round, not a TTL, and riders of a moving shard wait a round;
//! - before a pair is announced, `claim` takes the rider request and the driver in the same bucket
//!   with `create` (which only one caller can win); a pair whose claim fails is not announced and
//!   its other side goes back to the pool. This covers what leases cannot: a tick that stalls past
//!   its lease while publishing, and a driver whose reports put it in two shards at once.
//!
//! A starting instance joins (announces itself and takes shards) only after one hold time, so that
//! its mirror of the pool holds everything still waiting; alone in the bucket (a fresh cluster) it
//! joins at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use domain::{PersonName, RideRequestId};
use futures_util::StreamExt;
use platform::Shutdown;

/// The result of claiming a pair before announcing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Won,
    /// Another instance paired this rider request: the driver is still free.
    RiderTaken,
    /// Another instance paired this driver: the rider still waits.
    DriverTaken,
    /// The claim could not be made (the bucket is unreachable): announce nothing, keep both.
    Unavailable,
}

#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// The shards this instance may pair right now.
    fn owned(&self) -> BTreeSet<u32>;

    /// Takes the rider request and the driver for one pair, exclusively across instances.
    async fn claim(&self, request: RideRequestId, driver: &PersonName) -> Claim;
}

/// Every shard, always: a single matching instance, nothing to claim against.
#[derive(Debug)]
pub struct AllShards(pub u32);

#[async_trait]
impl Leases for AllShards {
    fn owned(&self) -> BTreeSet<u32> {
        (0..self.0.max(1)).collect()
    }

    async fn claim(&self, _request: RideRequestId, _driver: &PersonName) -> Claim {
        Claim::Won
    }
}

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub shards: u32,
    pub ttl: Duration,
    pub bucket: String,
    pub replicas: usize,
    /// Unique per process.
    pub instance: String,
    /// How long a starting instance watches before it joins (the hold time).
    pub warmup: Duration,
}

/// Kept by a starting instance until it has joined (taken its first shards): its process is not
/// ready meanwhile, so a rolling restart does not stop the next instance while this one still
/// only watches.
pub type Joining = Option<platform::http::WarmUp>;

#[derive(Clone, Copy, Debug)]
struct Held {
    revision: u64,
    renewed_at: Instant,
}

pub struct KvLeases {
    config: LeaseConfig,
    store: kv::Store,
    held: Mutex<BTreeMap<u32, Held>>,
    /// Shards given up to rebalance, no longer paired: their keys are deleted next round.
    releasing: Mutex<Vec<(u32, Held)>>,
    /// When this instance may announce itself and take shards.
    joins_at: Instant,
}

impl std::fmt::Debug for KvLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvLeases")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn shard_key(shard: u32) -> String {
    format!("shard.{shard}")
}

/// A key-safe, stable name for a driver (names may hold any character): FNV-1a over its bytes.
fn driver_key(driver: &PersonName) -> String {
    let hash = driver
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("claim.driver.{hash:016x}")
}

impl KvLeases {
    /// Opens (or creates) the bucket and starts taking part; runs until shutdown, then releases.
    /// `joining` is dropped once the instance has joined.
    pub async fn start(
        js: &jetstream::Context,
        config: LeaseConfig,
        shutdown: &Shutdown,
        joining: Joining,
    ) -> anyhow::Result<Arc<Self>> {
        // The bucket's backing stream is created directly (the conventions of a NATS KV bucket):
        // the client's `create_key_value` cannot read NATS 2.9's answer.
        let bucket = &config.bucket;
        let stream_config = jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: config.ttl,
            duplicate_window: config.ttl,
            // On disk: a node restarted in a cluster catches up from its own log instead of
            // rejoining empty (with memory storage, renewals failed "wrong last sequence: 0"
            // after the bucket's leader restarted, and every shard was re-acquired).
            storage: jetstream::stream::StorageType::File,
            num_replicas: config.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        };
        // As with the bus's streams: a cluster that has just formed (or is busy with every
        // service creating its streams at once) may time out any of these requests, so the whole
        // opening is tried again, with backoff, for about half a minute.
        let mut attempt = 0_u64;
        let store = loop {
            match Self::open(js, &stream_config, bucket).await {
                Ok(store) => break store,
                Err(e) => {
                    attempt += 1;
                    if attempt > 10 {
                        anyhow::bail!("opening the lease bucket {bucket}: {e}");
                    }
                    tracing::warn!(bucket = %bucket, attempt, error = %e, "opening the lease bucket failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
            }
        };
        // Alone in the bucket (a fresh cluster), join at once; otherwise watch one hold time first.
        let others = Self::members(&store).await > 0;
        let joins_at = Instant::now()
            + if others {
                config.warmup
            } else {
                Duration::ZERO
            };
        let leases = Arc::new(Self {
            config,
            store,
            held: Mutex::default(),
            releasing: Mutex::default(),
            joins_at,
        });
        let worker = leases.clone();
        let token = shutdown.token();
        shutdown.spawn(async move {
            let period = worker.config.ttl / 4;
            let mut joining = joining;
            loop {
                worker.round().await;
                if Instant::now() >= worker.joins_at {
                    joining.take();
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(period) => {}
                }
            }
            worker.release_all().await;
        });
        Ok(leases)
    }

    /// The bucket's stream created (or brought to this TTL: a bucket made with another would
    /// break the fencing arithmetic), then the bucket opened.
    async fn open(
        js: &jetstream::Context,
        stream_config: &jetstream::stream::Config,
        bucket: &str,
    ) -> anyhow::Result<kv::Store> {
        let mut stream = js.get_or_create_stream(stream_config.clone()).await?;
        let existing = &stream.info().await?.config;
        if existing.max_age != stream_config.max_age {
            tracing::warn!(bucket = %bucket, from = ?existing.max_age, to = ?stream_config.max_age, "changing the lease TTL");
            js.update_stream(stream_config.clone()).await?;
        }
        js.get_key_value(bucket)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live members. Counted by name: the listing follows the bucket, so a key written again
    /// while it is read can come twice (which once made an instance give up a shard it then took
    /// straight back).
    async fn members(store: &kv::Store) -> usize {
        let Ok(mut keys) = store.keys().await else {
            return 0;
        };
        let mut members = BTreeSet::new();
        while let Some(Ok(key)) = keys.next().await {
            if key.starts_with("member.") {
                members.insert(key);
            }
        }
        members.len()
    }

    /// How long one bucket operation may take before the round moves on. A bucket whose stream
    /// is electing a leader (a NATS node restarted) can hang a request for the client's whole
    /// timeout (5 s); with one renewal after another that stalled matching for ~11 s.
    fn op_timeout(&self) -> Duration {
        (self.config.ttl / 4).max(Duration::from_millis(100))
    }

    /// One round: announce, renew, then take or give shards towards the fair share.
    async fn round(&self) {
        if Instant::now() < self.joins_at {
            return;
        }
        let limit = self.op_timeout();
        // Shards given up last round: no tick of ours has paired them since (a tick that read the
        // old ownership and is still announcing is held off by the claims). The key goes now, so
        // the new owner does not wait for it to expire. If the delete fails, it expires.
        let releasing = std::mem::take(
            &mut *self
                .releasing
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (shard, lease) in releasing {
            let delete = self
                .store
                .delete_expect_revision(shard_key(shard), Some(lease.revision));
            let _ = tokio::time::timeout(limit, delete).await;
        }
        let member = format!("member.{}", self.config.instance);
        match tokio::time::timeout(limit, self.store.put(&member, "alive".into())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot announce this matching instance"),
            Err(_) => tracing::warn!("announcing this matching instance timed out"),
        }
        // Every renewal at once, each bounded: a slow bucket costs one timeout, not one per shard.
        let held: Vec<(u32, Held)> = self.held().iter().map(|(s, h)| (*s, *h)).collect();
        let renewals = futures_util::future::join_all(held.into_iter().map(|(shard, lease)| {
            let renewed_at = Instant::now();
            let update = self.store.update(
                shard_key(shard),
                self.config.instance.clone().into(),
                lease.revision,
            );
            async move { (shard, renewed_at, tokio::time::timeout(limit, update).await) }
        }))
        .await;
        for (shard, renewed_at, outcome) in renewals {
            match outcome {
                Ok(Ok(revision)) => {
                    self.held().insert(
                        shard,
                        Held {
                            revision,
                            renewed_at,
                        },
                    );
                }
                Ok(Err(e)) => {
                    tracing::warn!(shard, error = %e, "lost a matching shard");
                    self.held().remove(&shard);
                }
                // Unknown outcome: keep the lease as it was. It stops counting as owned half a TTL
                // after its last renewal (fencing), and the next round tries again — with the old
                // revision, so a renewal that did land shows up as lost and the shard is taken
                // again once it expires.
                Err(_) => tracing::warn!(shard, "renewing a matching shard timed out"),
            }
        }
        let shards = self.config.shards.max(1);
        let members = match tokio::time::timeout(limit, Self::members(&self.store)).await {
            Ok(members) => members.max(1),
            // Without a count, keep what we hold and take nothing new this round.
            Err(_) => return,
        };
        let fair = shards.div_ceil(u32::try_from(members).unwrap_or(1)) as usize;
        let owned = self.held().len();
        if owned < fair {
            // Start from a different shard per instance so instances do not all race for shard 0.
            let offset = self.config.instance.bytes().map(u32::from).sum::<u32>() % shards;
            for step in 0..shards {
                if self.held().len() >= fair {
                    break;
                }
                let shard = (offset + step) % shards;
                if self.held().contains_key(&shard) {
                    continue;
                }
                let acquired_at = Instant::now();
                let create = self
                    .store
                    .create(shard_key(shard), self.config.instance.clone().into());
                if let Ok(Ok(revision)) = tokio::time::timeout(limit, create).await {
                    tracing::info!(shard, instance = %self.config.instance, "acquired a matching shard");
                    self.held().insert(
                        shard,
                        Held {
                            revision,
                            renewed_at: acquired_at,
                        },
                    );
                }
            }
        } else if owned > fair {
            // Give one up: no longer paired from now, its key deleted next round.
            let surplus = self.held().keys().next_back().copied();
            if let Some(shard) = surplus
                && let Some(lease) = self.held().remove(&shard)
            {
                self.releasing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((shard, lease));
                tracing::info!(shard, "releasing a matching shard to rebalance");
            }
        }
        metrics::gauge!("matching_owned_shards").set(self.held().len() as f64);
    }

    async fn release_all(&self) {
        let mut held: Vec<(u32, Held)> = std::mem::take(&mut *self.held()).into_iter().collect();
        held.append(
            &mut *self
                .releasing
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (shard, lease) in held {
            let _ = self
                .store
                .delete_expect_revision(shard_key(shard), Some(lease.revision))
                .await;
        }
        let _ = self
            .store
            .delete(format!("member.{}", self.config.instance))
            .await;
    }
}

#[async_trait]
impl Leases for KvLeases {
    async fn claim(&self, request: RideRequestId, driver: &PersonName) -> Claim {
        use kv::CreateErrorKind;
        let rider_key = format!("claim.request.{}", request.as_uuid().simple());
        let value = self.config.instance.clone();
        // Bounded like the renewals: a claim whose outcome is unknown is not announced, and a key
        // it may have left behind expires with the bucket's TTL.
        let limit = self.op_timeout();
        let rider_claim = self.store.create(&rider_key, value.clone().into());
        let rider_revision = match tokio::time::timeout(limit, rider_claim).await {
            Ok(Ok(revision)) => revision,
            Ok(Err(e)) if e.kind() == CreateErrorKind::AlreadyExists => return Claim::RiderTaken,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot claim a ride request");
                return Claim::Unavailable;
            }
            Err(_) => return Claim::Unavailable,
        };
        let driver_claim = self.store.create(driver_key(driver), value.into());
        let driver_claim = tokio::time::timeout(limit, driver_claim)
            .await
            .unwrap_or_else(|_| Err(kv::CreateError::new(CreateErrorKind::Other)));
        match driver_claim {
            Ok(_) => Claim::Won,
            Err(e) => {
                // Give the rider back to whoever can pair it.
                let _ = self
                    .store
                    .delete_expect_revision(&rider_key, Some(rider_revision))
                    .await;
                if e.kind() == CreateErrorKind::AlreadyExists {
                    Claim::DriverTaken
                } else {
                    tracing::warn!(error = %e, "cannot claim a driver");
                    Claim::Unavailable
                }
            }
        }
    }

    fn owned(&self) -> BTreeSet<u32> {
        let fresh = self.config.ttl / 2;
        self.held()
            .iter()
            .filter(|(_, h)| h.renewed_at.elapsed() < fresh)
            .map(|(s, _)| *s)
            .collect()
    }
}
