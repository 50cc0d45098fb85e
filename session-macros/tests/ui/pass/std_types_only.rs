// Fields of std types need nothing but the macro: no serde in the user's code.
use session_core::schema::{SessionMap, SessionSchema};

#[session_macros::session(namespace = "counter")]
#[derive(Default)]
struct Counter {
    #[session(default)]
    clicks: u64,
    last_seen: Option<String>,
    #[session(default = vec![1, 2])]
    history: Vec<u32>,
}

fn main() {
    let session = SessionMap::new();
    Counter::view(&session).update_clicks(|n| *n += 1).unwrap();
    let counter = Counter::load_or_default(&session);
    assert_eq!(counter.clicks, 1);
    assert_eq!(counter.history, [1, 2]);
    assert!(counter.last_seen.is_none());
}
