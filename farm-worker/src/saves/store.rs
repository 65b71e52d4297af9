//! Where saves live: a local directory (the default) or any S3-compatible bucket, through the
//! `object_store` crate, so a farm's workers share one store and a room resumes on any of them.
//!
//! Writes are whole objects: `object_store` writes a local file under a temporary name and
//! renames it, and an S3 PUT replaces an object all at once, so a reader never sees half a save.
//! A room's autosave keeps the one before it (`autosave.prev`): when the newest is damaged,
//! resuming says so and uses the previous one.

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use retrofarm_proto::ids::RoomId;
use tracing::warn;

use super::format::{FormatError, SaveFile};

/// Where one save goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveKey {
    /// A room's autosave: where the room resumes from, on any worker.
    Room(RoomId),
    /// A player's numbered slot for a game.
    Slot {
        /// The player (the page's own id for its browser).
        user: String,
        /// The game's name.
        game: String,
        /// The slot, 1..=[`SLOTS`].
        slot: u8,
    },
}

/// Save slots per game and player.
pub const SLOTS: u8 = 4;

impl SaveKey {
    fn path(&self) -> Path {
        match self {
            SaveKey::Room(room) => Path::from_iter(["rooms", room.as_str(), "autosave"]),
            SaveKey::Slot { user, game, slot } => {
                Path::from_iter(["users", user.as_str(), game.as_str(), &format!("slot-{slot}")])
            }
        }
    }

    fn previous(&self) -> Option<Path> {
        match self {
            SaveKey::Room(room) => Some(Path::from_iter(["rooms", room.as_str(), "autosave.prev"])),
            SaveKey::Slot { .. } => None,
        }
    }
}

impl std::fmt::Display for SaveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveKey::Room(room) => write!(f, "room {room}'s autosave"),
            SaveKey::Slot { game, slot, .. } => write!(f, "slot {slot} of {game}"),
        }
    }
}

/// Why a save could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store failed (unreachable, refused credentials, full disk).
    #[error("the save store at {url} failed: {message}")]
    Store {
        /// The store.
        url: String,
        /// What it said.
        message: String,
    },
    /// The save is there but cannot be used.
    #[error("{key} cannot be used: {error}")]
    Format {
        /// Which save.
        key: String,
        /// What is wrong with it.
        error: FormatError,
    },
}

/// A save read back, and what was wrong on the way.
#[derive(Debug)]
pub struct Found {
    /// The save.
    pub save: SaveFile,
    /// Set when the newest save was damaged and the previous one was used instead.
    pub fell_back: Option<String>,
}

/// The store of saves.
#[derive(Debug, Clone)]
pub struct SaveStore {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl SaveStore {
    /// Opens `spec`: `s3://bucket/prefix` (credentials, region and endpoint from the usual
    /// `AWS_*` variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT` for an S3-compatible server, `AWS_ALLOW_HTTP=true` for plain HTTP), or
    /// a local directory (made if missing).
    pub fn open(spec: &str) -> Result<SaveStore, String> {
        SaveStore::open_with(spec, std::env::vars())
    }

    /// As [`SaveStore::open`], with the `AWS_*` settings taken from `vars` instead of the
    /// process's environment.
    pub fn open_with(spec: &str, vars: impl IntoIterator<Item = (String, String)>) -> Result<SaveStore, String> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("saves = {spec:?}: no bucket name (s3://bucket/prefix)"));
            }
            let mut builder = AmazonS3Builder::new();
            // As AmazonS3Builder::from_env reads them.
            for (key, value) in vars.into_iter().filter(|(k, _)| k.starts_with("AWS_")) {
                if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
            let s3 = builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| format!("saves = {spec:?}: {e} (set AWS_REGION, AWS_ENDPOINT and credentials)"))?;
            let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.trim_matches('/')))
            };
            return Ok(SaveStore { store, url: spec.to_string() });
        }
        let dir = FsPath::new(spec.strip_prefix("file://").unwrap_or(spec));
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make the saves directory {}: {e}", dir.display()))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("cannot use the saves directory {}: {e}", dir.display()))?;
        Ok(SaveStore { store: Arc::new(local), url: dir.display().to_string() })
    }

    /// Where the saves are, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, e: object_store::Error) -> StoreError {
        let hint = match e {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                " (check the store's credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            }
            _ => "",
        };
        StoreError::Store { url: self.url.clone(), message: format!("{e}{hint}") }
    }

    /// Writes a save. A room's autosave moves the one before it to `autosave.prev` first.
    pub async fn put(&self, key: &SaveKey, save: &SaveFile) -> Result<(), StoreError> {
        self.put_bytes(key, save.encode()).await
    }

    async fn put_bytes(&self, key: &SaveKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = key.path();
        if let Some(previous) = key.previous() {
            match self.store.copy(&path, &previous).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Reads a save; `None` when there is none. A damaged newest autosave is reported and the
    /// previous one used ([`Found::fell_back`]).
    pub async fn get(&self, key: &SaveKey) -> Result<Option<Found>, StoreError> {
        let newest = match self.read(&key.path()).await? {
            None => return Ok(None),
            Some(bytes) => SaveFile::decode(&bytes),
        };
        let error = match newest {
            Ok(save) => return Ok(Some(Found { save, fell_back: None })),
            Err(error) => error,
        };
        let damaged = StoreError::Format { key: key.to_string(), error };
        let Some(previous) = key.previous() else { return Err(damaged) };
        match self.read(&previous).await?.map(|b| SaveFile::decode(&b)) {
            Some(Ok(save)) => {
                warn!(%damaged, "using the save before it");
                Ok(Some(Found { save, fell_back: Some(damaged.to_string()) }))
            }
            _ => Err(damaged),
        }
    }

    async fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let got = match self.store.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(e)),
        };
        if got.meta.size > super::format::MAX_SAVE_BYTES as u64 {
            let error = FormatError::TooLarge(got.meta.size as usize);
            return Err(StoreError::Format { key: path.to_string(), error });
        }
        Ok(Some(got.bytes().await.map_err(|e| self.failed(e))?.to_vec()))
    }

    /// Which of a player's slots for a game hold a save, with when each was written (ms since
    /// the epoch).
    pub async fn slots(&self, user: &str, game: &str) -> Result<Vec<(u8, u64)>, StoreError> {
        let mut out = Vec::new();
        for slot in 1..=SLOTS {
            let key = SaveKey::Slot { user: user.into(), game: game.into(), slot };
            match self.store.head(&key.path()).await {
                Ok(meta) => out.push((slot, meta.last_modified.timestamp_millis().max(0) as u64)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
        Ok(out)
    }

    /// Writes raw bytes as `key`'s save, as [`SaveStore::put`] does (tests: damaged files).
    #[doc(hidden)]
    pub async fn put_raw(&self, key: &SaveKey, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_bytes(key, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::SaveHeader;
    use super::*;

    fn save(n: u8) -> SaveFile {
        SaveFile {
            header: SaveHeader {
                game: "g".into(),
                core: "c".into(),
                created_ms: u64::from(n),
                state_len: 0,
                sram_len: 0,
            },
            state: Some(vec![n; 100]),
            sram: None,
        }
    }

    fn room() -> SaveKey {
        SaveKey::Room(RoomId::new("abcd1234").unwrap())
    }

    #[tokio::test]
    async fn autosaves_keep_the_one_before_and_a_damaged_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SaveStore::open(dir.path().to_str().unwrap()).unwrap();
        assert!(store.get(&room()).await.unwrap().is_none());
        store.put(&room(), &save(1)).await.unwrap();
        store.put(&room(), &save(2)).await.unwrap();
        let found = store.get(&room()).await.unwrap().unwrap();
        assert_eq!((found.save.state, found.fell_back), (Some(vec![2; 100]), None));

        // A half-written newest save (as a crash of a non-atomic writer would leave).
        let bytes = save(3).encode();
        store.put_raw(&room(), bytes[..bytes.len() / 2].to_vec()).await.unwrap();
        let found = store.get(&room()).await.unwrap().unwrap();
        assert_eq!(found.save.state, Some(vec![2; 100]), "the previous save is used");
        assert!(found.fell_back.unwrap().contains("truncated"));
        // No temporary files are left beside the saves.
        let names: Vec<_> = walk(dir.path());
        assert_eq!(names, ["rooms/abcd1234/autosave", "rooms/abcd1234/autosave.prev"], "{names:?}");
    }

    #[tokio::test]
    async fn slots_are_per_player_and_game_and_a_damaged_slot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SaveStore::open(dir.path().to_str().unwrap()).unwrap();
        let slot = |user: &str, game: &str, slot| SaveKey::Slot { user: user.into(), game: game.into(), slot };
        store.put(&slot("u1", "Sushi The Cat", 2), &save(7)).await.unwrap();
        store.put(&slot("u1", "Retrofarm Walk", 1), &save(8)).await.unwrap();
        let listed = store.slots("u1", "Sushi The Cat").await.unwrap();
        assert_eq!(listed.iter().map(|s| s.0).collect::<Vec<_>>(), [2]);
        assert!(store.slots("u2", "Sushi The Cat").await.unwrap().is_empty());
        let got = store.get(&slot("u1", "Sushi The Cat", 2)).await.unwrap().unwrap();
        assert_eq!(got.save.state, Some(vec![7; 100]));
        store.put_raw(&slot("u1", "Sushi The Cat", 3), b"garbage".to_vec()).await.unwrap();
        let err = store.get(&slot("u1", "Sushi The Cat", 3)).await.unwrap_err();
        assert!(err.to_string().contains("slot 3 of Sushi The Cat cannot be used: not a retrofarm save"), "{err}");
    }

    #[test]
    fn bad_specs_say_what_to_do() {
        assert!(SaveStore::open("s3://").unwrap_err().contains("no bucket"));
        assert!(SaveStore::open("/proc/no/such/dir").unwrap_err().contains("cannot make the saves directory"));
    }

    fn walk(root: &FsPath) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}
