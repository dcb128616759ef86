//! A local folder as an object store that never leaves its root.
//!
//! `object_store`'s `LocalFileSystem` follows symbolic links: a link inside
//! the root to a folder outside it lets a read return, a write replace, and a
//! purge or collection delete files anywhere the process may write. Queues
//! only ever write plain files below their root, so [`ConfinedLocal`] refuses
//! any key whose path passes through a link (a permanent
//! [`PermissionDenied`](object_store::Error::PermissionDenied)), and listings
//! leave such keys out.

use std::fmt;
use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A `LocalFileSystem` rooted at a canonical folder that refuses every path
/// passing through a symbolic link.
#[derive(Debug, Clone)]
pub(super) struct ConfinedLocal {
    inner: Arc<LocalFileSystem>,
    /// Canonical: a root given through a link is resolved once, at open.
    root: Arc<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` passes through a symbolic link; the store never leaves its root")]
struct ThroughLink(String);

impl ConfinedLocal {
    /// Opens `dir` (which must exist).
    pub(super) fn new(dir: &FsPath) -> Result<Self, String> {
        let root = std::fs::canonicalize(dir)
            .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
        let inner = LocalFileSystem::new_with_prefix(&root).map_err(|e| e.to_string())?;
        Ok(Self {
            inner: Arc::new(inner),
            root: Arc::new(root),
        })
    }

    /// Refuses `location` if any part of its path below the root is a
    /// symbolic link. Parts that do not exist yet end the walk: a write
    /// creates them as plain folders.
    fn check(&self, location: &Path) -> Result<()> {
        let full = self.inner.path_to_filesystem(location)?;
        let below = full
            .strip_prefix(self.root.as_path())
            .map_err(|_| refused(location))?;
        let mut at = self.root.to_path_buf();
        for part in below.components() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => return Err(refused(location)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether a listed `location` is a plain file below the root (a listing
    /// descends into linked folders; those entries are left out).
    fn inside(&self, location: &Path) -> bool {
        let inside = self.check(location).is_ok();
        if !inside {
            tracing::warn!(key = %location, root = %self.root.display(), "left a key out of a listing: it passes through a symbolic link");
        }
        inside
    }
}

fn refused(location: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: location.to_string(),
        source: Box::new(ThroughLink(location.to_string())),
    }
}

impl fmt::Display for ConfinedLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfinedLocal({})", self.root.display())
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConfinedLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.check(location)?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Some(prefix) = prefix
            && let Err(e) = self.check(prefix)
        {
            return futures_util::stream::once(async move { Err(e) }).boxed();
        }
        let confined = self.clone();
        self.inner
            .list(prefix)
            .filter(move |meta| {
                let keep = match meta {
                    Ok(meta) => confined.inside(&meta.location),
                    Err(_) => true,
                };
                std::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        if let Some(prefix) = prefix {
            self.check(prefix)?;
        }
        let listed = self.inner.list_with_delimiter(prefix).await?;
        Ok(ListResult {
            common_prefixes: listed
                .common_prefixes
                .into_iter()
                .filter(|p| self.inside(p))
                .collect(),
            objects: listed
                .objects
                .into_iter()
                .filter(|m| self.inside(&m.location))
                .collect(),
        })
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.copy(from, to).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.rename(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.copy_if_not_exists(from, to).await
    }

    async fn rename_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.rename_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::TryStreamExt;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pjp-confined-{name}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    }

    /// A link inside the root to a folder outside it: nothing outside is
    /// read, listed, written or deleted through it.
    #[tokio::test]
    async fn a_link_out_of_the_root_is_never_followed() -> anyhow::Result<()> {
        let (root, outside) = (tempdir("root"), tempdir("outside"));
        std::fs::write(outside.join("precious"), b"keep me")?;
        std::os::unix::fs::symlink(&outside, root.join("link"))?;
        let store = ConfinedLocal::new(&root).map_err(anyhow::Error::msg)?;
        store
            .put(&Path::from("mine/blob"), Bytes::from_static(b"ok").into())
            .await?;

        let through = Path::from("link/precious");
        let denied = |r: Result<()>| matches!(r, Err(object_store::Error::PermissionDenied { .. }));
        assert!(denied(store.get(&through).await.map(drop)));
        assert!(denied(store.delete(&through).await));
        assert!(denied(
            store
                .put(&Path::from("link/new"), Bytes::from_static(b"x").into())
                .await
                .map(drop)
        ));
        let listed: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await?;
        assert_eq!(listed, vec!["mine/blob".to_owned()]);
        assert_eq!(std::fs::read(outside.join("precious"))?, b"keep me");
        assert!(!outside.join("new").exists());
        // Plain keys still work.
        assert_eq!(
            store.get(&Path::from("mine/blob")).await?.bytes().await?,
            Bytes::from_static(b"ok")
        );
        store.delete(&Path::from("mine/blob")).await?;
        std::fs::remove_dir_all(&root)?;
        std::fs::remove_dir_all(&outside)?;
        Ok(())
    }
}
