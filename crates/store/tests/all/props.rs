//! Property test: random writes against a `BTreeMap` model.
//!
//! Writes run in waves: the writes of a wave are submitted together (so the writer group-commits
//! them, with several writes to one key in one batch), waves one after another. The store
//! applies queued requests in submission order, so the model can apply them sequentially.
//! Checked: every write's answer, the final objects, `list`, and that watches started before,
//! between and after the writes each see exactly the committed changes after their starting
//! revision, in order, once.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_store::{BoxError, Error, EventKind, Mutation, Store, StoreConfig, WatchStream};
use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: [&str; 5] = ["nodes//n1", "pods/a/x", "pods/a/y", "pods/ab/z", "pods/b/x"];

/// The prefix the mid-way watcher filters on; "pods/ab/z" must not match it.
const PREFIX: &str = "pods/a/";

#[derive(Clone, Debug)]
enum Op {
    Create(usize, u32),
    /// Unconditional put (creates if absent).
    Put(usize, u32),
    Delete(usize),
    /// Put that the closure rejects if the key is absent, as an update with a precondition.
    Update(usize, u32),
    /// A closure that decides to leave the key alone.
    Touch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Create(k, v)),
        (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
        key.clone().prop_map(Op::Delete),
        (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Update(k, v)),
        key.prop_map(Op::Touch),
    ]
}

/// A change as the model records it: (revision, kind, key, object).
type Change = (u64, EventKind, String, Value);

/// What a write should have answered: Ok(revision, object, previous) or the error's name.
type Answer = Result<(u64, Option<Value>, Option<Value>), &'static str>;

#[derive(Default)]
struct Model {
    objects: BTreeMap<String, Value>,
    revision: u64,
    log: Vec<Change>,
}

fn stamped(mut object: Value, revision: u64) -> Value {
    object["metadata"]["resourceVersion"] = json!(revision.to_string());
    object
}

impl Model {
    fn apply(&mut self, op: &Op) -> Answer {
        let key = KEYS[op_key(op)].to_owned();
        let current = self.objects.get(&key).cloned();
        match (op, current) {
            (Op::Create(..), Some(_)) => Err("AlreadyExists"),
            (Op::Update(..), None) => Err("Rejected"),
            (Op::Create(_, v) | Op::Put(_, v) | Op::Update(_, v), previous) => {
                self.revision += 1;
                let object = stamped(json!({"v": v}), self.revision);
                let kind = match previous {
                    Some(_) => EventKind::Modified,
                    None => EventKind::Added,
                };
                self.objects.insert(key.clone(), object.clone());
                self.log.push((self.revision, kind, key, object.clone()));
                Ok((self.revision, Some(object), previous))
            }
            (Op::Delete(_), None) => Ok((self.revision, None, None)),
            (Op::Delete(_), Some(previous)) => {
                self.revision += 1;
                self.objects.remove(&key);
                let tombstone = stamped(previous.clone(), self.revision);
                self.log
                    .push((self.revision, EventKind::Deleted, key, tombstone));
                Ok((self.revision, None, Some(previous)))
            }
            (Op::Touch(_), current) => {
                let revision = current.as_ref().map_or(self.revision, |object| {
                    object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap()
                });
                Ok((revision, current.clone(), current))
            }
        }
    }
}

fn op_key(op: &Op) -> usize {
    match *op {
        Op::Create(k, _) | Op::Put(k, _) | Op::Delete(k) | Op::Update(k, _) | Op::Touch(k) => k,
    }
}

async fn run(store: &Store, op: Op) -> Answer {
    let key = KEYS[op_key(&op)];
    let written = match op {
        Op::Create(_, v) => store.create(key, json!({"v": v})).await,
        Op::Put(_, v) => {
            store
                .mutate(key, move |_| Ok(Mutation::Put(json!({"v": v}))))
                .await
        }
        Op::Delete(_) => store.mutate(key, |_| Ok(Mutation::Delete)).await,
        Op::Update(_, v) => {
            store
                .mutate(key, move |current| -> Result<Mutation, BoxError> {
                    current.ok_or("absent")?;
                    Ok(Mutation::Put(json!({"v": v})))
                })
                .await
        }
        Op::Touch(_) => store.mutate(key, |_| Ok(Mutation::Unchanged)).await,
    };
    match written {
        Ok(written) => Ok((written.revision, written.object, written.previous)),
        Err(Error::AlreadyExists { .. }) => Err("AlreadyExists"),
        Err(Error::Rejected(_)) => Err("Rejected"),
        Err(other) => panic!("unexpected store error: {other}"),
    }
}

/// Takes exactly `count` events, then makes sure no further one is waiting.
async fn take(stream: &mut WatchStream, count: usize) -> Vec<Change> {
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event within 10s")
            .expect("stream goes on")
            .expect("event, not error");
        changes.push((
            event.revision,
            event.kind,
            event.key,
            (*event.object).clone(),
        ));
    }
    let extra = tokio::time::timeout(Duration::from_millis(5), stream.next()).await;
    assert!(extra.is_err(), "an extra item: {:?}", extra.unwrap());
    changes
}

fn check(waves: Vec<Vec<Op>>, mid_wave: usize, late_from: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb"), StoreConfig::default())
            .await
            .unwrap();
        let mut model = Model::default();
        let mut from_start = store.watch("", 0).await.unwrap();
        let mut mid = None;

        for (index, wave) in waves.iter().enumerate() {
            if index == mid_wave {
                let from = store.revision();
                mid = Some((from, store.watch(PREFIX, from).await.unwrap()));
            }
            // join_all polls its futures in order, and each queues its request on its first
            // poll, so the wave reaches the writer in this order.
            let answers =
                futures::future::join_all(wave.iter().map(|op| run(&store, op.clone()))).await;
            for (op, answer) in wave.iter().zip(answers) {
                assert_eq!(answer, model.apply(op), "answer to {op:?}");
            }
        }

        assert_eq!(store.revision(), model.revision);
        for key in KEYS {
            assert_eq!(
                store.get(key).await.unwrap().as_ref(),
                model.objects.get(key),
                "{key}"
            );
        }
        let (listed, revision) = store.list("").await.unwrap();
        assert_eq!(revision, model.revision);
        assert_eq!(listed, model.objects.values().cloned().collect::<Vec<_>>());
        let (listed, _) = store.list(PREFIX).await.unwrap();
        let expected: Vec<_> = model
            .objects
            .iter()
            .filter(|(key, _)| key.starts_with(PREFIX))
            .map(|(_, object)| object.clone())
            .collect();
        assert_eq!(listed, expected);

        // Revisions run 1, 2, 3, ... with no gap and no repeat, in the model's log as well.
        let revisions: Vec<u64> = model.log.iter().map(|change| change.0).collect();
        assert_eq!(revisions, (1..=model.revision).collect::<Vec<_>>());

        // Subscribed before any write: everything arrives live.
        assert_eq!(take(&mut from_start, model.log.len()).await, model.log);
        // Subscribed now: everything is replayed from history.
        let mut replayed = store.watch("", 0).await.unwrap();
        assert_eq!(take(&mut replayed, model.log.len()).await, model.log);
        // Subscribed between waves, on a prefix: history (if any) then live.
        if let Some((from, mut stream)) = mid {
            let expected: Vec<Change> = model
                .log
                .iter()
                .filter(|(revision, _, key, _)| *revision > from && key.starts_with(PREFIX))
                .cloned()
                .collect();
            assert_eq!(take(&mut stream, expected.len()).await, expected);
        }
        // From an arbitrary revision after the fact.
        let from = late_from.min(model.revision);
        let mut late = store.watch("", from).await.unwrap();
        let expected: Vec<Change> = model.log[from as usize..].to_vec();
        assert_eq!(take(&mut late, expected.len()).await, expected);

        store.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_sequential_model(
        waves in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..8),
        mid_wave in 0usize..8,
        late_from in 0u64..60,
    ) {
        check(waves, mid_wave, late_from);
    }
}
