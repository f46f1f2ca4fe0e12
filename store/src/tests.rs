//! Unit tests of the store's public behaviour; the model check and matcher tables live in
//! `store/tests/`.

use super::*;

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}
