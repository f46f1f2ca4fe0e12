//! Locating the shared real-data fixtures (`../shared/fixtures`) for tests.
//!
//! Tests call [`fixture_dir`]; where the fixtures are absent it prints why and returns `None` so the
//! test can skip, unless `MESHFED_REQUIRE_FIXTURES=1` (set by `scripts/test`), where a missing
//! fixture is a failure.

use std::path::PathBuf;

/// Environment variable pointing at the fixtures root, overriding the default location.
pub const FIXTURES_ENV: &str = "MESHFED_FIXTURES";
/// Environment variable that turns a missing fixture into a panic instead of a skip.
pub const REQUIRE_ENV: &str = "MESHFED_REQUIRE_FIXTURES";

/// The fixtures root: `$MESHFED_FIXTURES`, else `shared/fixtures` beside the workspace checkout.
pub fn fixtures_root() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// The directory `sub` under the fixtures root, or `None` (with a message on stderr) when it is
/// absent and fixtures are not required.
///
/// # Panics
/// When the directory is absent and `MESHFED_REQUIRE_FIXTURES=1`.
pub fn fixture_dir(sub: &str) -> Option<PathBuf> {
    let dir = fixtures_root().join(sub);
    if dir.exists() {
        return Some(dir);
    }
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "fixture {} is missing and {REQUIRE_ENV}=1",
        dir.display()
    );
    eprintln!(
        "skipping: fixture {} is absent (set {FIXTURES_ENV} to point at shared/fixtures)",
        dir.display()
    );
    None
}
