//! The store's one error type, and the two errors it puts inside [`Error::Rejected`] itself.

/// The error a [`crate::Store::mutate`] closure returns to refuse a write; any error type works,
/// and the caller gets it back untouched inside [`Error::Rejected`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` found an object already stored under `key`.
    #[error("{key} already exists")]
    AlreadyExists { key: String },

    /// No object is stored under `key`. The store itself never returns this (`get` answers
    /// `None`, a `mutate` closure sees `None`); it is here so that callers can use one error type.
    #[error("{key} not found")]
    NotFound { key: String },

    /// A watch asked for changes after `requested`, but history before `oldest` has been
    /// compacted away. `oldest` is the smallest `from_revision` a watch can start from now; the
    /// caller should list again and watch from the list's revision (Kubernetes: 410 Gone).
    #[error("revision {requested} is compacted; watches can start from revision {oldest} or later")]
    Compacted { requested: u64, oldest: u64 },

    /// The write was refused before anything was stored: the `mutate` closure returned this error
    /// (passed back untouched, so callers can downcast it to their own type), or it panicked
    /// ([`ClosurePanicked`]), or the object to store is not a JSON object ([`InvalidObject`]).
    #[error(transparent)]
    Rejected(BoxError),

    /// A watcher fell so far behind the live event stream that events were dropped for it. The
    /// stream ends after this; watch again from the last revision received.
    #[error("the watcher fell behind the live event stream")]
    Lagged,

    /// redb or the file system failed, or a stored record could not be decoded (corruption).
    /// For a write, nothing of its batch was committed. The message says what failed.
    #[error("store storage failure: {0}")]
    Storage(String),

    /// The store has been closed (or its writer has stopped); the request was not carried out.
    #[error("the store is closed")]
    Closed,
}

/// Inside [`Error::Rejected`] when a `mutate` closure panicked. The writer catches the panic so
/// that one bad closure fails only its own request.
#[derive(Debug, thiserror::Error)]
#[error("the mutate closure for {key} panicked: {message}")]
pub struct ClosurePanicked {
    pub key: String,
    pub message: String,
}

/// Inside [`Error::Rejected`] when the value to store is not a JSON object (or its `metadata` is
/// not one), so it cannot carry a `metadata.resourceVersion`.
#[derive(Debug, thiserror::Error)]
#[error("cannot store {key}: {reason}")]
pub struct InvalidObject {
    pub key: String,
    pub reason: &'static str,
}

/// redb reports failures with one error type per operation; callers of the store only need to
/// know that storage failed and why, so they all become [`Error::Storage`].
macro_rules! storage_error_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(error: $ty) -> Self {
                Error::Storage(error.to_string())
            }
        }
    )*};
}

storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    std::io::Error,
);

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Storage(format!("undecodable record: {error}"))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Error::Storage(format!("storage task failed: {error}"))
    }
}
