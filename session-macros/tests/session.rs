//! Behaviour of the code `#[session]` generates, over the in-memory `SessionMap`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use serde::{Deserialize, Serialize};
use session_core::schema::{SchemaError, SessionMap, SessionSchema};
use session_macros::session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Peg {
    R,
    G,
    B,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Guess {
    pegs: Vec<Peg>,
    black: u8,
}

#[session]
#[derive(Debug, Default, PartialEq)]
struct MastermindState {
    secret: Vec<Peg>,
    guesses: Vec<Guess>,
    #[session(default = 10)]
    max_guesses: u8,
}

/// A versioned cart.
#[session(namespace = "cart", version = 2)]
#[derive(Debug, Default, PartialEq)]
pub struct Cart {
    #[session(rename = "items", default)]
    lines: Vec<String>,
    #[session(skip)]
    cached_total: u32,
    r#type: Option<String>,
}

#[test]
fn keys_are_namespaced_field_names() {
    assert_eq!(MastermindState::NAMESPACE, "mastermind_state");
    assert_eq!(MastermindState::SECRET_KEY, "mastermind_state.secret");
    assert_eq!(
        MastermindState::MAX_GUESSES_KEY,
        "mastermind_state.max_guesses"
    );
    assert_eq!(
        MastermindState::KEYS,
        [
            "mastermind_state.secret",
            "mastermind_state.guesses",
            "mastermind_state.max_guesses"
        ]
    );
    assert_eq!(Cart::VERSION, 2);
    assert_eq!(Cart::LINES_KEY, "cart.v2.items");
    assert_eq!(Cart::TYPE_KEY, "cart.v2.type");
    assert_eq!(
        Cart::KEYS,
        ["cart.v2.items", "cart.v2.type"],
        "skip is not stored"
    );
}

#[test]
fn accessors_touch_only_their_own_key() {
    let session = SessionMap::new();
    let view = MastermindState::view(&session);
    assert_eq!(view.secret().unwrap(), None);
    assert_eq!(view.max_guesses().unwrap(), 10, "default when absent");

    view.set_secret(vec![Peg::R, Peg::G]).unwrap();
    assert_eq!(session.keys(), ["mastermind_state.secret"]);
    assert_eq!(
        session.json("mastermind_state.secret").unwrap(),
        r#"["R","G"]"#
    );
    assert_eq!(view.secret().unwrap(), Some(vec![Peg::R, Peg::G]));

    let guess = Guess {
        pegs: vec![Peg::B],
        black: 1,
    };
    let count = view
        .update_guesses(|guesses| {
            guesses.get_or_insert_with(Vec::new).push(guess.clone());
            guesses.as_ref().map_or(0, Vec::len)
        })
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(view.guesses().unwrap(), Some(vec![guess]));
    view.update_max_guesses(|max| *max -= 1).unwrap();
    assert_eq!(view.max_guesses().unwrap(), 9);

    view.update_guesses(|guesses| *guesses = None).unwrap();
    assert_eq!(view.guesses().unwrap(), None, "None removes the key");
    view.remove_secret();
    assert_eq!(session.keys(), ["mastermind_state.max_guesses"]);
}

#[test]
fn whole_struct_load_save_clear() {
    let session = SessionMap::new();
    assert_eq!(
        MastermindState::load(&session).unwrap(),
        None,
        "required fields absent"
    );
    let state = MastermindState {
        secret: vec![Peg::B, Peg::B],
        guesses: vec![],
        max_guesses: 7,
    };
    state.save(&session).unwrap();
    assert_eq!(session.keys().len(), 3);
    assert_eq!(MastermindState::load(&session).unwrap(), Some(state));

    session.remove_value_for_test(MastermindState::MAX_GUESSES_KEY);
    let loaded = MastermindState::load(&session).unwrap().unwrap();
    assert_eq!(loaded.max_guesses, 10, "defaulted field may be absent");

    MastermindState::clear(&session);
    assert!(session.keys().is_empty());
}

#[test]
fn skip_and_rename() {
    let session = SessionMap::new();
    let cart = Cart {
        lines: vec!["apple".into()],
        cached_total: 99,
        r#type: Some("gift".into()),
    };
    cart.save(&session).unwrap();
    assert_eq!(session.keys(), ["cart.v2.items", "cart.v2.type"]);
    let loaded = Cart::load(&session).unwrap().unwrap();
    assert_eq!(loaded.cached_total, 0, "skipped field is not stored");
    assert_eq!(loaded.lines, ["apple"]);
}

#[test]
fn other_versions_are_absent_not_errors() {
    let session = SessionMap::new();
    // Version 1 of the cart stored a different shape under its own keys.
    session.insert_json("cart.v1.items", r#"{"old":"shape"}"#);
    session.insert_json("cart.items", "42");
    let view = Cart::view(&session);
    assert_eq!(view.lines().unwrap(), Vec::<String>::new());
    assert_eq!(Cart::load_or_default(&session), Cart::default());
}

#[test]
fn undecodable_values_are_typed_errors_or_defaults() {
    let session = SessionMap::new();
    MastermindState {
        secret: vec![Peg::R],
        guesses: vec![],
        max_guesses: 5,
    }
    .save(&session)
    .unwrap();
    // A deploy changed the types: the stored values no longer decode.
    session.insert_json(MastermindState::SECRET_KEY, r#"["Purple"]"#);
    session.insert_json(MastermindState::MAX_GUESSES_KEY, "not json");

    let err = MastermindState::view(&session).secret().unwrap_err();
    assert!(matches!(&err, SchemaError::Decode { key, .. } if key == "mastermind_state.secret"));
    assert!(err.to_string().contains("mastermind_state.secret"));
    let err = MastermindState::load(&session).unwrap_err();
    assert_eq!(err.key(), Some("mastermind_state.secret"));

    let lenient = MastermindState::load_or_default(&session);
    assert_eq!(lenient.secret, Vec::<Peg>::new(), "falls back to Default");
    assert_eq!(lenient.max_guesses, 10, "falls back to the field default");
    assert!(lenient.guesses.is_empty());
}

#[test]
fn entries_are_json_per_key() {
    let state = MastermindState {
        secret: vec![Peg::G],
        guesses: vec![],
        max_guesses: 3,
    };
    let entries: Vec<(&str, String)> = state
        .entries()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect();
    assert_eq!(
        entries,
        [
            ("mastermind_state.secret", r#"["G"]"#.to_owned()),
            ("mastermind_state.guesses", "[]".to_owned()),
            ("mastermind_state.max_guesses", "3".to_owned()),
        ]
    );
}

trait RemoveForTest {
    fn remove_value_for_test(&self, key: &str);
}

impl RemoveForTest for SessionMap {
    fn remove_value_for_test(&self, key: &str) {
        session_core::schema::SessionAccess::remove_value(self, key);
    }
}
