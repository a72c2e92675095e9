//! The in-process bus for the embedded mode: the same semantics as the NATS adapter (groups,
//! fan-out, at-least-once with redelivery and dead letters, dedup by event id) inside one process.
//! Nothing is persisted: a durable group with no live member drops what is published meanwhile.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::EventId;
use tokio::sync::mpsc;

use super::{
    Acker, Bus, BusError, DEAD_LETTER_PREFIX, Delivery, Envelope, SubscribeOptions, Subscription,
    subject_matches, validate_subject,
};
use crate::clock;

const CHANNEL_CAPACITY: usize = 1024;
const DEDUP_WINDOW: Duration = Duration::from_secs(120);
/// Subjects whose routes are remembered (the services publish a few dozen).
const MAX_ROUTES: usize = 1024;

#[derive(Clone, Debug, Default)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    groups: Vec<Group>,
    next_group_id: u64,
    recent: HashSet<EventId>,
    recent_order: VecDeque<(Instant, EventId)>,
    /// The groups (id, max deliver) each subject published so far goes to; forgotten whenever
    /// a group comes or goes.
    routes: HashMap<String, Arc<[(u64, u32)]>>,
}

#[derive(Debug)]
struct Group {
    id: u64,
    filter: String,
    durable: Option<String>,
    members: Vec<mpsc::Sender<Delivery>>,
    next_member: usize,
    max_deliver: u32,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters (every update is a single push/remove), so recover from poisoning.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the groups `subject` goes to, or `None` if it is a duplicate.
    fn route(&self, envelope: &Envelope) -> Option<Arc<[(u64, u32)]>> {
        let mut state = self.lock();
        let now = Instant::now();
        while let Some((at, id)) = state.recent_order.front().copied() {
            if now.duration_since(at) < DEDUP_WINDOW {
                break;
            }
            state.recent_order.pop_front();
            state.recent.remove(&id);
        }
        if !state.recent.insert(envelope.id) {
            return None;
        }
        state.recent_order.push_back((now, envelope.id));
        if let Some(groups) = state.routes.get(&envelope.subject) {
            return Some(groups.clone());
        }
        let groups: Arc<[(u64, u32)]> = state
            .groups
            .iter()
            .filter(|g| subject_matches(&g.filter, &envelope.subject))
            .map(|g| (g.id, g.max_deliver))
            .collect();
        if state.routes.len() >= MAX_ROUTES {
            state.routes.clear();
        }
        state
            .routes
            .insert(envelope.subject.clone(), groups.clone());
        Some(groups)
    }

    /// Who a group is, for an operator: its durable name, or the subjects an ephemeral group
    /// (one process's fan-out subscription) takes.
    fn group_name(&self, group_id: u64) -> String {
        let state = self.lock();
        match state.groups.iter().find(|g| g.id == group_id) {
            Some(Group {
                durable: Some(name),
                ..
            }) => name.clone(),
            Some(group) => format!("ephemeral {}", group.filter),
            None => "gone".to_owned(),
        }
    }

    /// The live members of a group, starting with the next in round-robin order.
    fn members_in_turn(&self, group_id: u64) -> Vec<mpsc::Sender<Delivery>> {
        let mut state = self.lock();
        let Some(index) = state.groups.iter().position(|g| g.id == group_id) else {
            return Vec::new();
        };
        let group = &mut state.groups[index];
        group.members.retain(|m| !m.is_closed());
        if group.members.is_empty() {
            if group.durable.is_none() {
                state.groups.remove(index);
                state.routes.clear();
            }
            return Vec::new();
        }
        group.next_member = (group.next_member + 1) % group.members.len();
        let (first, rest) = group.members.split_at(group.next_member);
        rest.iter().chain(first).cloned().collect()
    }

    fn forget(&self, id: EventId) {
        self.lock().recent.remove(&id);
    }
}

/// A reserved place in one member's queue.
struct Slot {
    group_id: u64,
    max_deliver: u32,
    permit: mpsc::OwnedPermit<Delivery>,
}

impl Slot {
    fn fill(self, inner: &Arc<Inner>, envelope: Envelope, attempt: u32) {
        let acker = MemoryAcker {
            inner: Arc::downgrade(inner),
            group_id: self.group_id,
            envelope: Some(envelope.clone()),
            attempt,
            max_deliver: self.max_deliver,
        };
        self.permit
            .send(Delivery::new(envelope, attempt, Box::new(acker)));
    }
}

enum Reservation {
    Reserved(Slot),
    /// Nobody is listening (now): nothing to deliver.
    NoMember,
    /// Every member's queue is full.
    Full,
}

fn try_reserve(inner: &Inner, group_id: u64, max_deliver: u32) -> Reservation {
    let members = inner.members_in_turn(group_id);
    if members.is_empty() {
        return Reservation::NoMember;
    }
    for member in members {
        if let Ok(permit) = member.try_reserve_owned() {
            return Reservation::Reserved(Slot {
                group_id,
                max_deliver,
                permit,
            });
        }
    }
    Reservation::Full
}

/// Redelivery: waits for room in a member's queue (it runs on its own task, never in a publish).
async fn redeliver(
    inner: &Arc<Inner>,
    group_id: u64,
    envelope: Envelope,
    attempt: u32,
    max_deliver: u32,
) {
    for member in inner.members_in_turn(group_id) {
        if let Ok(permit) = member.reserve_owned().await {
            let slot = Slot {
                group_id,
                max_deliver,
                permit,
            };
            slot.fill(inner, envelope, attempt);
            return;
        }
    }
}

/// Delivers to every group or to none, without waiting: a consumer so far behind that its queue
/// is full makes the publish fail (the caller answers 503) instead of stalling it.
async fn publish_inner(inner: &Arc<Inner>, envelope: Envelope) -> Result<(), BusError> {
    validate_subject(&envelope.subject, false)?;
    let Some(groups) = inner.route(&envelope) else {
        return Ok(());
    };
    let mut slots = Vec::with_capacity(groups.len());
    for &(group_id, max_deliver) in groups.iter() {
        match try_reserve(inner, group_id, max_deliver) {
            Reservation::Reserved(slot) => slots.push(slot),
            Reservation::NoMember => {}
            Reservation::Full => {
                // Not delivered anywhere: the same event may be published again.
                inner.forget(envelope.id);
                let consumer = inner.group_name(group_id);
                metrics::counter!("bus_publish_refused_total", "consumer" => consumer.clone())
                    .increment(1);
                return Err(BusError::Overloaded(format!(
                    "the consumer {consumer} of {} has {CHANNEL_CAPACITY} messages waiting",
                    envelope.subject
                )));
            }
        }
    }
    for slot in slots {
        slot.fill(inner, envelope.clone(), 1);
    }
    Ok(())
}

fn schedule_redelivery(
    inner: Weak<Inner>,
    group_id: u64,
    envelope: Envelope,
    attempt: u32,
    max_deliver: u32,
    delay: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if attempt >= max_deliver {
            tracing::warn!(subject = %envelope.subject, id = %envelope.id, attempt, "dead-lettering event");
            let mut dead = envelope.clone();
            dead.id = clock::new_id();
            dead.subject = format!("{DEAD_LETTER_PREFIX}.{}", envelope.subject);
            dead.headers.insert("original-id".into(), envelope.id.to_string());
            dead.headers.insert("attempts".into(), attempt.to_string());
            let _ = publish_inner(&inner, dead).await;
        } else {
            redeliver(&inner, group_id, envelope, attempt + 1, max_deliver).await;
        }
    });
}

struct MemoryAcker {
    inner: Weak<Inner>,
    group_id: u64,
    /// `None` once settled.
    envelope: Option<Envelope>,
    attempt: u32,
    max_deliver: u32,
}

impl MemoryAcker {
    fn redeliver_after(&mut self, delay: Duration) {
        if let Some(envelope) = self.envelope.take() {
            schedule_redelivery(
                self.inner.clone(),
                self.group_id,
                envelope,
                self.attempt,
                self.max_deliver,
                delay,
            );
        }
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        self.envelope = None;
        Ok(())
    }

    async fn nak(mut self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        self.redeliver_after(delay);
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        // Dropped unsettled (a handler panicked or a consumer stopped): redeliver.
        self.redeliver_after(Duration::ZERO);
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
        publish_inner(&self.inner, envelope).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
        validate_subject(&options.filter, true)?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let mut state = self.inner.lock();
        let existing = options.durable.as_ref().and_then(|name| {
            state
                .groups
                .iter_mut()
                .find(|g| g.durable.as_ref() == Some(name))
        });
        if let Some(group) = existing {
            if group.filter != options.filter {
                return Err(BusError::Backend(format!(
                    "consumer group {:?} already exists with filter {:?}",
                    group.durable, group.filter
                )));
            }
            group.members.push(sender);
            return Ok(Subscription::new(receiver));
        }
        let id = state.next_group_id;
        state.next_group_id += 1;
        state.routes.clear();
        state.groups.push(Group {
            id,
            filter: options.filter,
            durable: options.durable,
            members: vec![sender],
            next_member: 0,
            max_deliver: options.max_deliver.max(1),
        });
        Ok(Subscription::new(receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::contract::{envelope, next};

    crate::bus_contract_suite!(async { super::InProcessBus::new() });

    /// The routes a subject has been published on are remembered; a group that comes later
    /// gets the next publish all the same.
    #[tokio::test]
    async fn a_group_that_subscribes_after_a_publish_gets_the_next_one() {
        let bus = InProcessBus::new();
        let mut first = bus
            .subscribe(SubscribeOptions::ephemeral("route.x"))
            .await
            .expect("subscribe");
        bus.publish(envelope("route.x", "one"))
            .await
            .expect("published");
        next(&mut first).await.ack().await.expect("ack");
        let mut later = bus
            .subscribe(SubscribeOptions::durable("route.>", "later"))
            .await
            .expect("subscribe");
        bus.publish(envelope("route.x", "two"))
            .await
            .expect("published");
        assert_eq!(next(&mut later).await.envelope.payload, b"two");
        assert_eq!(next(&mut first).await.envelope.payload, b"two");
    }

    #[tokio::test]
    async fn a_full_consumer_fails_the_publish_for_everyone_instead_of_blocking_it() {
        let bus = InProcessBus::new();
        let _stalled = bus
            .subscribe(SubscribeOptions::durable("load.x", "stalled"))
            .await
            .expect("subscribe");
        let mut healthy = bus
            .subscribe(SubscribeOptions::ephemeral("load.x"))
            .await
            .expect("subscribe");
        for i in 0..CHANNEL_CAPACITY {
            bus.publish(envelope("load.x", &i.to_string()))
                .await
                .expect("room left");
            next(&mut healthy).await.ack().await.expect("ack");
        }
        let overflow = envelope("load.x", "one too many");
        let err = bus
            .publish(overflow.clone())
            .await
            .expect_err("the stalled queue is full");
        assert!(matches!(err, BusError::Overloaded(_)), "{err}");
        assert!(
            err.to_string().contains("the consumer stalled of load.x"),
            "names the consumer that is behind: {err}"
        );
        crate::bus::contract::assert_quiet(&mut healthy).await;
        drop(_stalled);
        bus.publish(overflow)
            .await
            .expect("the same event can be published once there is room");
        let d = next(&mut healthy).await;
        assert_eq!(d.envelope.payload, b"one too many");
    }
}
