//! Crash durability: a write the store acknowledged survives SIGKILL of the process.
//!
//! The test runs this same test binary again, selecting only `child_writes_until_killed`, as a
//! child process. The child writes as fast as it can from many tasks and prints each write as
//! soon as it is acknowledged. The parent reads a few hundred acknowledgements, kills the child
//! mid-stream (SIGKILL on Unix: no destructors, no flush), reopens the file and looks for every
//! acknowledged write.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use flotilla_store::{Mutation, Store, StoreConfig};
use futures::StreamExt;
use serde_json::json;

/// Set in the child's environment: the directory of the store it writes to.
const CHILD_DIR: &str = "FLOTILLA_STORE_CRASH_CHILD_DIR";
const WRITERS: usize = 16;
const ACKS_BEFORE_KILL: usize = 400;

/// What the child reports, one line per acknowledged write.
enum Ack {
    /// `created <key> <revision>`: the key was created at that revision and never written again.
    Created(String, u64),
    /// `counted <key> <n>`: the counter under the key reached n.
    Counted(String, u64),
}

fn parse(line: &str) -> Option<Ack> {
    let mut words = line.split(' ');
    let (tag, key, number) = (words.next()?, words.next()?, words.next()?.parse().ok()?);
    match tag {
        "created" => Some(Ack::Created(key.to_owned(), number)),
        "counted" => Some(Ack::Counted(key.to_owned(), number)),
        _ => None,
    }
}

/// Kills the child however the test ends, so that a failing test leaves no writer behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::child_writes_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut acks = Vec::new();
    for line in stdout.lines() {
        if let Some(ack) = parse(&line.unwrap()) {
            acks.push(ack);
            if acks.len() == ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    assert_eq!(acks.len(), ACKS_BEFORE_KILL, "the child stopped early");
    // Kill while the child is still writing: some batch is usually mid-commit.
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&dir.path().join("db.redb"), StoreConfig::default())
            .await
            .unwrap();
        let mut highest = 0;
        for ack in &acks {
            match ack {
                Ack::Created(key, revision) => {
                    let object = store.get(key).await.unwrap();
                    let object = object.unwrap_or_else(|| panic!("acknowledged {key} is lost"));
                    assert_eq!(object["metadata"]["resourceVersion"], revision.to_string());
                    highest = highest.max(*revision);
                }
                Ack::Counted(key, n) => {
                    let object = store.get(key).await.unwrap().unwrap();
                    // Increments after the last one we read may have committed too.
                    assert!(
                        object["n"].as_u64().unwrap() >= *n,
                        "{key} lost increment {n}"
                    );
                }
            }
        }
        let revision = store.revision();
        assert!(revision >= highest);

        // The history that survived is complete: revisions 1..=revision, once each.
        let replayed: Vec<u64> = store
            .watch("", 0)
            .await
            .unwrap()
            .take(revision as usize)
            .map(|event| event.unwrap().revision)
            .collect()
            .await;
        assert_eq!(replayed, (1..=revision).collect::<Vec<_>>());
        // And the reopened store goes on from there.
        let next = store.create("after/crash", json!({})).await.unwrap();
        assert_eq!(next.revision, revision + 1);
    });
}

/// The child process of `acknowledged_writes_survive_sigkill`; does nothing when run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by acknowledged_writes_survive_sigkill"]
async fn child_writes_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("db.redb");
    let store = Store::open(&path, StoreConfig::default()).await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let counter = format!("counters/{writer}");
                for i in 0u64.. {
                    let key = format!("pods/crash/{writer}-{i}");
                    let written = store
                        .create(&key, json!({"spec": {"writer": writer, "i": i}}))
                        .await
                        .unwrap();
                    // println! takes the stdout lock per line, so lines never interleave.
                    println!("created {key} {}", written.revision);
                    let written = store
                        .mutate(&counter, |current| {
                            let n = current.map_or(0, |object| object["n"].as_u64().unwrap());
                            Ok(Mutation::Put(json!({"n": n + 1})))
                        })
                        .await
                        .unwrap();
                    let n = written.object.unwrap()["n"].as_u64().unwrap();
                    println!("counted {counter} {n}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}
