//! Resolving a container's `image` to the bytes of a Wasm module.
//!
//! - `file:///abs/path/app.wasm`: a file on the node;
//! - `NAME`, `NAME:latest`: `NAME.wasm` in one of the node's module directories (`flotilla up`
//!   points one at the built samples), so manifests work from any checkout location;
//! - `http://host[:port]/path/app.wasm[@sha256:HEX]`: downloaded (see [`http`]), checked
//!   against the digest when one is given.

mod http;

use std::path::{Path, PathBuf};

/// Why an image could not be fetched; becomes `ErrImagePull` with this message.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("module file {path} could not be read: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no module named {name:?} in the node's module directories ({searched}); build it (wasm-samples/build.sh) or use a file:///absolute/path.wasm image"
    )]
    NotFound { name: String, searched: String },
    #[error(
        "image {0:?} is not supported yet: use a module name, file:///absolute/path.wasm or http://host/path.wasm (optionally @sha256:DIGEST)"
    )]
    Unsupported(String),
    #[error("image {image:?} is malformed: {why}")]
    BadReference { image: String, why: String },
    #[error("downloading {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "the module downloaded from {url} has digest sha256:{actual}, not the sha256:{expected} the image pins; it changed or was tampered with"
    )]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "module file {path} is {size} bytes, over this node's limit of {max} bytes (--max-module-size)"
    )]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("module file {path} is not a regular file")]
    NotAFile { path: String },
}

#[derive(Debug, Clone)]
pub struct Resolver {
    module_dirs: Vec<PathBuf>,
    max_size: u64,
}

impl Resolver {
    /// Finds bare names in `module_dirs` and refuses module files over `max_size` bytes.
    pub fn new(module_dirs: Vec<PathBuf>, max_size: u64) -> Self {
        Resolver {
            module_dirs,
            max_size,
        }
    }

    /// Reads the module an image names. A file over the size cap is refused before it is
    /// read, and so is anything but a regular file (`/dev/zero` would never end); the read
    /// itself stops at the cap in case the file grows meanwhile.
    pub async fn fetch(&self, image: &str) -> Result<Vec<u8>, PullError> {
        use tokio::io::AsyncReadExt as _;
        if image.starts_with("http://") {
            return http::HttpImage::parse(image)?.download(self.max_size).await;
        }
        let path = self.locate(image)?;
        let shown = || path.display().to_string();
        let unreadable = |source| PullError::Unreadable {
            path: shown(),
            source,
        };
        let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
        let metadata = file.metadata().await.map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(PullError::NotAFile { path: shown() });
        }
        let too_large = |size| PullError::TooLarge {
            path: shown(),
            size,
            max: self.max_size,
        };
        if metadata.len() > self.max_size {
            return Err(too_large(metadata.len()));
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.take(self.max_size.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(unreadable)?;
        if bytes.len() as u64 > self.max_size {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    fn locate(&self, image: &str) -> Result<PathBuf, PullError> {
        if let Some(path) = image.strip_prefix("file://") {
            return Ok(PathBuf::from(path));
        }
        if image.contains("://") || image.contains('@') || image.contains('/') {
            return Err(PullError::Unsupported(image.to_string()));
        }
        let name = match image.split_once(':') {
            None => image,
            Some((name, "latest")) => name,
            Some(_) => return Err(PullError::Unsupported(image.to_string())),
        };
        let file = format!("{name}.wasm");
        self.module_dirs
            .iter()
            .map(|dir| dir.join(&file))
            .find(|candidate| Path::new(candidate).is_file())
            .ok_or_else(|| PullError::NotFound {
                name: name.to_string(),
                searched: self
                    .module_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_module_directories() {
        let dir = std::env::temp_dir().join(format!("flotilla-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hello.wasm"), b"\0asm").unwrap();
        let resolver = Resolver::new(vec![PathBuf::from("/nonexistent"), dir.clone()], 1 << 20);
        assert_eq!(resolver.locate("hello").unwrap(), dir.join("hello.wasm"));
        assert_eq!(
            resolver.locate("hello:latest").unwrap(),
            dir.join("hello.wasm")
        );
        assert!(matches!(
            resolver.locate("nope"),
            Err(PullError::NotFound { .. })
        ));
        assert!(matches!(
            resolver.locate("hello:v2"),
            Err(PullError::Unsupported(_))
        ));
        assert_eq!(
            resolver.locate("file:///x/y.wasm").unwrap(),
            PathBuf::from("/x/y.wasm")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
