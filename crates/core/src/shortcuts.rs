//! The one switch for our three shortcuts around Cedar's own checks: request
//! shapes (a request that plainly conforms skips Cedar's per-request schema
//! check, and flat contexts skip its JSON parser), the one-pass entity check
//! (entity JSON that plainly conforms skips Cedar's parser), and the
//! precomputed closure (slices tell Cedar their ancestors are complete).
//!
//! Each shortcut takes only what Cedar would take, and equivalence tests
//! hold them to it. After a cedar-policy upgrade, or to rule them out when
//! chasing a discrepancy, set `CEDAR_SIDECAR_CEDAR_FAST_PATHS=off` (or
//! `cedar_fast_paths = false` in the config file): every request and entity
//! then goes through Cedar's own code, at Cedar's speed. The setting is read
//! once per process.

use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that turns the shortcuts off for any command.
pub const SHORTCUTS_VAR: &str = "CEDAR_SIDECAR_CEDAR_FAST_PATHS";

const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNSET);

/// Whether the shortcuts are on: as set by [`set_enabled`], else by the
/// environment variable (`off`, `false` or `0` turn them off), else on.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = std::env::var(SHORTCUTS_VAR)
                .map_or(true, |value| !matches!(value.trim(), "off" | "false" | "0"));
            STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
            on
        }
    }
}

/// Sets the switch (from `serve`'s settings) before anything is decided.
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_read_from_settings_over_the_environment() {
        let before = enabled();
        set_enabled(false);
        assert!(!enabled());
        set_enabled(true);
        assert!(enabled());
        set_enabled(before);
    }
}
