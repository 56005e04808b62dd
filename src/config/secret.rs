//! Secret files (`password_file`, `token_file`): read once, never printed, and a warning when other
//! users can read them. Part of the config layer.

use std::ops::Range;
use std::path::Path;

use super::Secret;
use super::diag::Diagnostics;

/// Reads the secret in the file `full` (its trailing newline dropped) for `key`; an unreadable or
/// empty file is an error at `span`, one readable by other users a warning.
pub(super) fn read_secret_file(
    cx: &mut Diagnostics<'_>,
    span: Range<usize>,
    key: &str,
    full: &Path,
) -> Option<Secret> {
    match std::fs::read_to_string(full) {
        Ok(text) if !text.trim().is_empty() => {
            warn_if_exposed(cx, span, key, full);
            Some(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        Ok(_) => {
            cx.error(span, key, format!("secret file `{}` is empty", full.display()), None);
            None
        }
        Err(e) => {
            cx.error(
                span,
                key,
                format!("cannot read secret file `{}`: {e}", full.display()),
                Some(
                    "relative paths start at the config file's folder; the daemon's user must be \
                     able to read it"
                        .into(),
                ),
            );
            None
        }
    }
}

/// Warns when `path` (a secret) can be read by users other than its owner.
pub(super) fn warn_if_exposed(
    cx: &mut Diagnostics<'_>,
    span: Range<usize>,
    key: &str,
    path: &Path,
) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            cx.warning(
                span,
                key,
                format!(
                    "secret file `{}` is readable by other users (mode {mode:04o})",
                    path.display()
                ),
                Some(format!("chmod 600 {}", path.display())),
            );
        }
    }
}
