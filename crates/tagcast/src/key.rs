//! The app's secret key, from `--key-file`, `TAGCAST_KEY` or `--key`.

use std::path::Path;

use anyhow::{Context, anyhow, bail};

use crate::cli::KeyArgs;
use crate::failure::Failure;

/// What to say when no key was given.
pub const NEEDED: &str =
    "the app's secret key is needed: --key-file PATH, the TAGCAST_KEY variable, or --key";

impl KeyArgs {
    /// Whether `--key` itself was on the command line (not the variable).
    pub fn key_flag_given(&self) -> bool {
        self.key.is_some() && !self.key_from_env
    }

    /// The key: `--key-file` (a trailing newline trimmed), else `--key` or `TAGCAST_KEY`;
    /// None if neither. `--key` with `--key-file` is refused, being ambiguous.
    pub fn resolve(&self) -> Result<Option<String>, Failure> {
        match (&self.key_file, &self.key) {
            (Some(_), Some(_)) if self.key_flag_given() => Err(Failure::config(anyhow!(
                "--key and --key-file cannot be used together"
            ))),
            (Some(path), _) => read_key_file(path).map(Some).map_err(Failure::config),
            (None, Some(key)) if key.is_empty() => {
                let source = if self.key_from_env {
                    "TAGCAST_KEY"
                } else {
                    "--key"
                };
                Err(Failure::config(anyhow!("{source} is empty")))
            }
            (None, key) => Ok(key.clone()),
        }
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let key = text.strip_suffix('\n').unwrap_or(&text);
    let key = key.strip_suffix('\r').unwrap_or(key);
    if key.is_empty() {
        bail!("the key file {} is empty", path.display());
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key: Option<&str>, from_env: bool, file: Option<&Path>) -> KeyArgs {
        KeyArgs {
            key: key.map(String::from),
            key_file: file.map(Path::to_path_buf),
            key_from_env: from_env,
        }
    }

    #[test]
    fn the_file_wins_over_the_variable_and_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        let key = args(Some("from-env"), true, Some(&file)).resolve().unwrap();
        assert_eq!(key.as_deref(), Some("s3cret"));
        // Only one newline is trimmed: the rest is the key's own.
        std::fs::write(&file, " s3cret \n\n").unwrap();
        let key = args(None, false, Some(&file)).resolve().unwrap();
        assert_eq!(key.as_deref(), Some(" s3cret \n"));
    }

    #[test]
    fn flag_and_file_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "k").unwrap();
        let error = args(Some("k"), false, Some(&file)).resolve().unwrap_err();
        assert!(
            error.message().contains("--key-file"),
            "{}",
            error.message()
        );
        assert_eq!(error.status, crate::failure::CONFIG);
    }

    #[test]
    fn missing_and_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = args(None, false, Some(&missing)).resolve().unwrap_err();
        assert!(error.message().contains(&missing.display().to_string()));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = args(None, false, Some(&empty)).resolve().unwrap_err();
        assert!(error.message().contains("empty"), "{}", error.message());
    }
}
