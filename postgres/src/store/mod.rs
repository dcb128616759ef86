//! Payloads and results too large for a row: [`PayloadStore`], through the
//! `object_store` crate.

mod confined;

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::error::QueueError;

/// The default size above which a payload or result goes to the object store
/// instead of the row: 64 KiB. Below it, a round trip to the store costs more
/// than the bytes in the row.
pub const DEFAULT_INLINE_LIMIT: usize = 64 * 1024;

/// Where large payloads and results live, and the size above which they go
/// there.
///
/// Opened from a URL with the `object_store` crate's usual environment
/// credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`):
///
/// | URL | store |
/// |---|---|
/// | `file:///var/lib/pjp` | a local folder (created if missing); symbolic links inside it are never followed, so no read, write or delete leaves it |
/// | `memory://` | in this process only (tests) |
/// | `s3://bucket/prefix` | Amazon S3 or any S3-compatible server (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`) |
/// | `gs://bucket/prefix` | Google Cloud Storage |
/// | `az://container/prefix` | Azure Blob Storage |
///
/// Every object carries a CRC-32 in its row, so a blob changed or cut short
/// behind the queue's back fails its job with an error naming the key instead
/// of feeding garbage to an executor.
///
/// ```
/// # fn main() -> Result<(), pjp_postgres::QueueError> {
/// use pjp_postgres::PayloadStore;
///
/// let store = PayloadStore::open("memory://")?.inline_limit(1024);
/// assert_eq!(store.limit(), 1024);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PayloadStore {
    store: Arc<dyn ObjectStore>,
    url: String,
    inline_limit: usize,
}

// By hand: a cloud store's own `Debug` can show its credentials.
impl std::fmt::Debug for PayloadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadStore")
            .field("url", &self.url)
            .field("inline_limit", &self.inline_limit)
            .finish_non_exhaustive()
    }
}

/// Where one payload or result lives once written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) inline: Option<Vec<u8>>,
    pub(crate) key: Option<String>,
    pub(crate) crc: Option<i64>,
}

impl PayloadStore {
    /// Opens a store by URL (see the table above).
    ///
    /// # Errors
    ///
    /// [`QueueError::StoreUrl`] for a URL that does not parse, an unknown
    /// scheme, or a store whose builder rejects its configuration.
    pub fn open(url: &str) -> Result<Self, QueueError> {
        let bad = |why: String| QueueError::StoreUrl {
            url: crate::redact::redact_url(url),
            why: crate::redact::scrub(&why, url),
        };
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let prefix = Path::from_url_path(parsed.path()).map_err(|e| bad(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
                let local = confined::ConfinedLocal::new(&dir).map_err(bad)?;
                return Ok(Self::new(Arc::new(local), url));
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            other => {
                return Err(bad(format!(
                    "unknown scheme `{other}` (use file://, memory://, s3://, gs:// or az://)"
                )));
            }
        };
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Self::new(store, url))
    }

    /// Wraps a store built by hand (with options the URL form cannot say).
    /// `url` names it in messages (a password in it is never shown).
    pub fn new(store: Arc<dyn ObjectStore>, url: impl Into<String>) -> Self {
        Self {
            store,
            url: crate::redact::redact_url(&url.into()),
            inline_limit: DEFAULT_INLINE_LIMIT,
        }
    }

    /// Sets the size above which bytes go to the store (default
    /// [`DEFAULT_INLINE_LIMIT`]). `0` stores every non-empty payload.
    pub fn inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = bytes;
        self
    }

    /// The size above which bytes go to the store.
    pub fn limit(&self) -> usize {
        self.inline_limit
    }

    /// The URL the store was opened from, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes, reads back and deletes a small probe object under `key`: the
    /// check a worker makes at start-up, so that a store it cannot write to
    /// is one clear error before it claims a job, not a failed save after.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pjp_postgres::QueueError> {
    /// let store = pjp_postgres::PayloadStore::open("memory://")?;
    /// store.check_writable("probes/worker-1").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancellation safety
    ///
    /// Cancel safe: dropped part-way, the probe object may be left behind under its key (it is
    /// small, and written again by the next check).
    pub async fn check_writable(&self, key: &str) -> Result<(), QueueError> {
        let path = parse_key(key)?;
        let error = |source| QueueError::Store {
            key: key.to_owned(),
            source,
        };
        let probe = Bytes::from_static(b"pjp write probe");
        self.store
            .put(&path, probe.clone().into())
            .await
            .map_err(error)?;
        let read = self.store.get(&path).await.map_err(error)?;
        let read = read.bytes().await.map_err(error)?;
        self.store.delete(&path).await.map_err(error)?;
        if read == probe {
            Ok(())
        } else {
            Err(QueueError::invalid(
                "store",
                format!("`{key}` read back different bytes than were written"),
            ))
        }
    }

    /// Whether `len` bytes stay in the row rather than going to the store.
    pub(crate) fn keeps_inline(&self, len: usize) -> bool {
        len <= self.inline_limit
    }

    /// `bytes` kept in the row.
    pub(crate) fn inline(&self, bytes: &[u8]) -> Stored {
        Stored {
            inline: Some(bytes.to_vec()),
            ..Stored::default()
        }
    }

    /// Keeps `bytes` inline or writes them under `key`. The object is written
    /// before the row that names it commits, so a row never points at a
    /// missing blob; a write whose commit then fails leaves an orphan.
    pub(crate) async fn put(&self, key: String, bytes: &[u8]) -> Result<Stored, QueueError> {
        if self.keeps_inline(bytes.len()) {
            return Ok(self.inline(bytes));
        }
        let path = parse_key(&key)?;
        let crc = i64::from(crc32fast::hash(bytes));
        self.store
            .put(&path, Bytes::copy_from_slice(bytes).into())
            .await
            .map_err(|source| QueueError::Store {
                key: key.clone(),
                source,
            })?;
        Ok(Stored {
            inline: None,
            key: Some(key),
            crc: Some(crc),
        })
    }

    /// Reads the object under `key` and checks it against its CRC.
    pub(crate) async fn get(&self, key: &str, crc: Option<i64>) -> Result<Bytes, BlobError> {
        let path = parse_key(key).map_err(|e| BlobError::Unusable(e.to_string()))?;
        let fetched = match self.store.get(&path).await {
            Ok(found) => found.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = fetched.map_err(|source| match source {
            object_store::Error::NotFound { .. } => {
                BlobError::Unusable(format!("blob `{key}` is missing from {}", self.url))
            }
            other => BlobError::Unavailable(QueueError::Store {
                key: key.to_owned(),
                source: other,
            }),
        })?;
        let actual = i64::from(crc32fast::hash(&bytes));
        match crc {
            Some(expected) if expected != actual => Err(BlobError::Unusable(format!(
                "blob `{key}` is corrupt: CRC-32 {actual:08x}, the row says {expected:08x} ({} bytes)",
                bytes.len()
            ))),
            _ => Ok(bytes),
        }
    }

    /// Deletes the objects under `keys`, ignoring ones already gone. Returns
    /// how many deletes failed.
    pub(crate) async fn delete(&self, keys: impl IntoIterator<Item = String>) -> usize {
        let mut failed = 0;
        for key in keys {
            let Ok(path) = Path::parse(&key) else {
                failed += 1;
                continue;
            };
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(%key, %error, "could not delete a purged job's blob");
                    failed += 1;
                }
            }
        }
        failed
    }
}

/// Where a job's result goes: `{root}/results/{kind}/{batch}/{id}-{token}`
/// (`-` for no kind), `root` being the queue's `{schema}/{identity}`. The
/// claim's token in the name means a stale worker's upload can never
/// overwrite the current holder's; kind and batch group a tree's blobs, so
/// one batch can be listed or removed by prefix.
pub(crate) fn result_key(root: &str, job: &crate::job::PgJob) -> String {
    let kind = match job.kind.as_str() {
        "" => "-",
        kind => kind,
    };
    format!(
        "{root}/results/{kind}/{}/{}-{}",
        job.batch, job.id, job.token
    )
}

/// Where a payload written at enqueue goes:
/// `{root}/inputs/{queue}/{kind}/{batch}/{random}` (`-` for no kind).
pub(crate) fn input_key(root: &str, job: &crate::enqueue::NewJob) -> String {
    let kind = match job.kind_name() {
        "" => "-",
        kind => kind,
    };
    format!(
        "{root}/inputs/{}/{kind}/{}/{:032x}",
        job.queue,
        job.job_options().batch,
        fastrand::u128(..)
    )
}

/// Why a blob could not be read.
#[derive(Debug)]
pub(crate) enum BlobError {
    /// The blob is missing, corrupt or its key is malformed: retrying will not
    /// help; the job is dead-lettered with this message.
    Unusable(String),
    /// The store failed: worth retrying.
    Unavailable(QueueError),
}

fn parse_key(key: &str) -> Result<Path, QueueError> {
    Path::parse(key).map_err(|source| QueueError::Store {
        key: key.to_owned(),
        source: source.into(),
    })
}
