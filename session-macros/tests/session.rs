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

// --- Migrations: the Mastermind state gains a difficulty (v2), then a player name (v3).

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Difficulty {
    #[default]
    Easy,
    Hard,
}

#[session(namespace = "mm", version = 1)]
#[derive(Debug, Default, PartialEq)]
struct StateV1 {
    #[session(default)]
    guesses: Vec<Guess>,
    #[session(default = 10)]
    max_guesses: u8,
}

#[session(namespace = "mm", version = 2, migrate(from = 1, with = v1_to_v2))]
#[derive(Debug, Default, PartialEq)]
struct StateV2 {
    #[session(default)]
    guesses: Vec<Guess>,
    #[session(default = 10)]
    max_guesses: u8,
    difficulty: Difficulty,
}

/// Ten guesses were the easy game; fewer, the hard one.
fn v1_to_v2(old: StateV1) -> Result<StateV2, std::convert::Infallible> {
    let difficulty = if old.max_guesses >= 10 {
        Difficulty::Easy
    } else {
        Difficulty::Hard
    };
    Ok(StateV2 {
        guesses: old.guesses,
        max_guesses: old.max_guesses,
        difficulty,
    })
}

#[session(namespace = "mm", version = 3, migrate(from = 2, with = v2_to_v3))]
#[derive(Debug, Default, PartialEq)]
struct StateV3 {
    #[session(default)]
    guesses: Vec<Guess>,
    difficulty: Difficulty,
    #[session(default)]
    player: String,
}

fn v2_to_v3(old: StateV2) -> Result<StateV3, String> {
    if old.guesses.len() > usize::from(old.max_guesses) {
        return Err(format!(
            "{} guesses of at most {}",
            old.guesses.len(),
            old.max_guesses
        ));
    }
    Ok(StateV3 {
        guesses: old.guesses,
        difficulty: old.difficulty,
        player: "anonymous".into(),
    })
}

fn a_guess() -> Guess {
    Guess {
        pegs: vec![Peg::R, Peg::G],
        black: 1,
    }
}

fn session_with_v1(max_guesses: u8, guesses: usize) -> SessionMap {
    let session = SessionMap::new();
    StateV1 {
        guesses: vec![a_guess(); guesses],
        max_guesses,
    }
    .save(&session)
    .unwrap();
    session
}

#[test]
fn v1_data_loads_as_v2_once_and_the_v1_keys_are_gone() {
    let session = session_with_v1(6, 2);
    let state = StateV2::load(&session).unwrap().unwrap();
    assert_eq!(state.difficulty, Difficulty::Hard);
    assert_eq!(state.guesses.len(), 2);
    assert_eq!(
        session.keys(),
        ["mm.v2.difficulty", "mm.v2.guesses", "mm.v2.max_guesses"]
    );
    // Once: a second load reads the v2 keys; a v1 key written again later is not migrated
    // over existing v2 data.
    session.insert_json(StateV1::MAX_GUESSES_KEY, "12");
    assert_eq!(StateV2::load(&session).unwrap().unwrap(), state);
}

#[test]
fn v1_data_loads_as_v3_through_v2() {
    let session = session_with_v1(10, 1);
    assert!(
        StateV3::is_stored(&session),
        "v1 data counts as stored for v3"
    );
    let state = StateV3::load_or_default(&session);
    assert_eq!(
        state,
        StateV3 {
            guesses: vec![a_guess()],
            difficulty: Difficulty::Easy,
            player: "anonymous".into(),
        }
    );
    assert_eq!(
        session.keys(),
        ["mm.v3.difficulty", "mm.v3.guesses", "mm.v3.player"]
    );
}

#[test]
fn a_failing_migration_is_a_typed_error_naming_the_versions_and_keeps_the_old_data() {
    let session = SessionMap::new();
    StateV2 {
        guesses: vec![a_guess(); 3],
        max_guesses: 2,
        difficulty: Difficulty::Hard,
    }
    .save(&session)
    .unwrap();
    let before = session.keys();
    let err = StateV3::load(&session).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::Migration {
                namespace: "mm",
                from: 2,
                to: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "migrating session schema `mm` from version 2 to version 3 failed"
    );
    assert_eq!(session.keys(), before, "nothing removed");
    // `load_or_default` never fails: defaults, old data kept for a later fix.
    assert_eq!(StateV3::load_or_default(&session), StateV3::default());
    assert_eq!(session.keys(), before);
}

#[test]
fn an_empty_session_has_nothing_to_migrate() {
    let session = SessionMap::new();
    assert!(!StateV3::is_stored(&session));
    assert_eq!(StateV3::load_or_default(&session), StateV3::default());
    assert!(session.keys().is_empty());
}
