//! The pseudonym key file (`[privacy] key_file`): read at start, or created with 32 random bytes
//! and mode 0600 when missing. Runtime layer: the only code that touches the file.
//!
//! A key that cannot be read or created is not a reason to stop answering a child-protection
//! hotline: the daemon then runs with a key random to this process (pseudonyms change at the
//! next restart) and says so loudly.

use std::io::Write;
use std::path::Path;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file exists but does not hold exactly 32 bytes.
    #[error("{path}: holds {len} bytes, not 32")]
    WrongLength {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
}

/// Reads the 32-byte key at `path`, creating it (mode 0600, new random bytes) when missing.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.display().to_string(), source };
    match std::fs::read(path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            KeyFileError::WrongLength { path: path.display().to_string(), len: bytes.len() }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = super::driver::random_bytes();
            let mut options = std::fs::OpenOptions::new();
            // `create_new`: two daemons starting at once cannot both write a key.
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(&key).and_then(|()| file.sync_all()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// The key for the switchboard: the file's, or (after a loud warning) a random one.
pub fn key_or_ephemeral(path: &Path) -> [u8; 32] {
    match load_or_create(path) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(
                error = %e,
                "pseudonym key file unusable; using a temporary key (pseudonyms change at restart)"
            );
            super::driver::random_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_created_private_and_then_read_back() {
        let dir = std::env::temp_dir().join(format!("tongdai-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pseudonym.key");
        let _ = std::fs::remove_file(&path);
        let first = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(load_or_create(&path), Err(KeyFileError::WrongLength { len: 5, .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
