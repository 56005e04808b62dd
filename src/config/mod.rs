//! Configuration: TOML → validated types.
