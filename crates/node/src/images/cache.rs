//! The node's copy of fetched modules: blobs by digest (`blobs/sha256/HEX`) and, for each
//! tag, the digest it last resolved to (`tags/HASH`, named by a hash of the reference so that
//! no part of an image name becomes a path). Both outlive the agent, so a restarted node runs
//! what it has without fetching it again.
//!
//! The cache is a cache: a failed write is logged and skipped (the next start fetches again),
//! and blobs are written to a temporary file and renamed, so a crash never leaves a partial
//! blob under a digest's name. Bytes are verified against their digest before they get here.

use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// Keeps nothing: every start fetches (tests, and nodes without a data directory).
    pub fn in_memory_only() -> Self {
        Cache { dir: None }
    }

    pub fn on_disk(dir: PathBuf) -> Self {
        Cache { dir: Some(dir) }
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = flotilla_api::image::valid_digest(digest).ok()?;
        Some(
            self.dir
                .as_ref()?
                .join("blobs/sha256")
                .join(&hex["sha256:".len()..]),
        )
    }

    fn tag_path(&self, key: &str) -> Option<PathBuf> {
        let name = format!("{:x}", Sha256::digest(key.as_bytes()));
        Some(self.dir.as_ref()?.join("tags").join(name))
    }

    /// The bytes of a digest, if the node has them.
    pub async fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        tokio::fs::read(self.blob_path(digest)?).await.ok()
    }

    pub async fn put_blob(&self, digest: &str, bytes: &[u8]) {
        if let Some(path) = self.blob_path(digest) {
            write_atomically(path, bytes).await;
        }
    }

    /// The digest a reference resolved to last time.
    pub async fn tag(&self, key: &str) -> Option<String> {
        let text = tokio::fs::read_to_string(self.tag_path(key)?).await.ok()?;
        flotilla_api::image::valid_digest(text.trim()).ok()
    }

    pub async fn set_tag(&self, key: &str, digest: &str) {
        if let Some(path) = self.tag_path(key) {
            write_atomically(path, digest.as_bytes()).await;
        }
    }
}

async fn write_atomically(path: PathBuf, bytes: &[u8]) {
    let result = async {
        let dir = path.parent().expect("cache paths have a directory");
        tokio::fs::create_dir_all(dir).await?;
        let temporary = dir.join(format!(".tmp-{}", uuid_like()));
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::rename(&temporary, &path).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "could not cache a module on disk; it will be fetched again");
    }
}

/// A name no two concurrent writers share.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
