//! [`SessionSchema`]: a struct whose fields are session keys.

use serde_json::value::RawValue;

use super::{SchemaError, SessionAccess};

/// A struct stored in a session one key per field, as `#[session]` generates.
///
/// Each field is its own key, `"<namespace>.<field>"` (or `"<namespace>.v<N>.<field>"` with
/// `version = N`), so writing one field rewrites only that key, and data written under
/// another version is simply absent.
///
/// Implement it with the [`#[session]`](crate::session) attribute; a hand-written
/// implementation must keep [`KEYS`](Self::KEYS) and [`entries`](Self::entries) in the same
/// order.
///
/// ```
/// use session_core::{session, schema::{SessionMap, SessionSchema}};
///
/// #[session]
/// #[derive(Default)]
/// struct Visit {
///     #[session(default)]
///     count: u32,
///     name: String,
/// }
///
/// let session = SessionMap::new(); // in a web app: the request's session
/// let visit = Visit::view(&session);
/// visit.update_count(|count| *count += 1)?;   // reads, changes, writes one key
/// assert_eq!(visit.count()?, 1);
/// assert_eq!(visit.name()?, None);            // no default: absent is `None`
/// assert_eq!(Visit::COUNT_KEY, "visit.count");
/// assert_eq!(session.keys(), ["visit.count"]);
///
/// let whole = Visit::load_or_default(&session);
/// assert_eq!((whole.count, whole.name.as_str()), (1, ""));
/// # Ok::<(), session_core::SchemaError>(())
/// ```
///
/// # Options
///
/// On the struct: `namespace = "..."` (default: the struct name in snake_case),
/// `version = N` (keys become `"<namespace>.v<N>.<field>"`, so data of other versions reads
/// as absent), `migrate(from = M, with = path::to::fn)` (see *Migrations* below),
/// `crate = "path"` (where `session_core` is; by default the macro finds it: the
/// application's own `session-core` dependency, or `session_actix::session_core` when it
/// depends on `session-actix` alone).
/// On a field: `rename = "..."` (the key's last part), `default` (`Default::default()` when
/// absent), `default = expr`, `skip` (not stored; loads as its default).
///
/// # Migrations
///
/// `version = N` alone makes data of other versions read as absent. To carry it over,
/// name the older struct's version and a function that converts it:
///
/// ```
/// use session_core::{session, schema::{SessionMap, SessionSchema}};
///
/// #[session(namespace = "mastermind", version = 1)]
/// #[derive(Default)]
/// struct MastermindV1 {
///     #[session(default)]
///     guesses: Vec<String>,
/// }
///
/// #[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum Difficulty { #[default] Normal, Hard }
///
/// // v2 adds a difficulty; games in progress keep their guesses.
/// #[session(namespace = "mastermind", version = 2, migrate(from = 1, with = v1_to_v2))]
/// #[derive(Default)]
/// struct Mastermind {
///     #[session(default)]
///     guesses: Vec<String>,
///     #[session(default)]
///     difficulty: Difficulty,
/// }
///
/// fn v1_to_v2(old: MastermindV1) -> Result<Mastermind, std::convert::Infallible> {
///     Ok(Mastermind { guesses: old.guesses, difficulty: Difficulty::Normal })
/// }
///
/// let session = SessionMap::new();
/// MastermindV1 { guesses: vec!["RGBY".into()] }.save(&session)?;
/// let game = Mastermind::load_or_default(&session);       // migrates, once
/// assert_eq!(game.guesses, ["RGBY"]);
/// assert_eq!(session.keys(), ["mastermind.v2.difficulty", "mastermind.v2.guesses"]);
/// # Ok::<(), session_core::SchemaError>(())
/// ```
///
/// The migration runs when a load finds none of this version's keys but data of the older
/// one: it loads the older struct (running *its* migration first, so v1 → v2 → v3 chains
/// work), converts it, writes the new keys and removes the old ones, so it happens once.
/// The function is `fn(Old) -> Result<New, E>` with any error type `E` convertible to a
/// boxed error; a failure is [`SchemaError::Migration`] naming the versions (from `load`;
/// `load_or_default` logs it and uses the defaults), and the old keys stay. `from = 0`
/// migrates from a struct without `version`. `from` must be older than `version` (a
/// compile error otherwise), and must be the version of the function's parameter type: a
/// migration that names `from = 1` but takes a version 2 struct does not build.
///
/// ```compile_fail
/// use session_core::{session, schema::{SessionMap, SessionSchema}};
///
/// #[session(namespace = "game", version = 2)]
/// #[derive(Default)]
/// struct GameV2 {
///     #[session(default)]
///     score: u32,
/// }
///
/// #[session(namespace = "game", version = 3, migrate(from = 1, with = from_v2))]
/// #[derive(Default)]
/// struct Game {
///     #[session(default)]
///     score: u32,
/// }
///
/// // Takes a version 2 struct, but `from = 1` says version 1.
/// fn from_v2(old: GameV2) -> Result<Game, std::convert::Infallible> {
///     Ok(Game { score: old.score })
/// }
///
/// let _ = Game::load(&SessionMap::new());
/// ```
///
/// # What is generated
///
/// For `struct Visit`: a `COUNT_KEY` constant per stored field; `Visit::view(&session)`
/// returning a `VisitView` with `count()`, `set_count(..)`, `remove_count()` and
/// `update_count(|v| ..)` per field; and this trait. A field with a default reads as `T`,
/// a field without one as `Option<T>`.
pub trait SessionSchema: Sized {
    /// The key namespace (default: the struct name in snake_case).
    const NAMESPACE: &'static str;
    /// The schema version (`0` when none is given).
    const VERSION: u32;
    /// Every stored key, in field order (skipped fields have none).
    const KEYS: &'static [&'static str];

    /// Loads the whole struct.
    ///
    /// Fields with a default take it when their key is absent; `Ok(None)` if a field
    /// without a default is absent.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Decode`] naming the first key whose value does not decode.
    fn load<S: SessionAccess + ?Sized>(session: &S) -> Result<Option<Self>, SchemaError>;

    /// Overwrites each field of `target` whose key is present and decodes; a field whose
    /// key is absent or does not decode takes its `#[session(default)]`, or keeps the value
    /// it has. A value that does not decode is logged (`tracing` warning). Never fails.
    fn load_into<S: SessionAccess + ?Sized>(target: &mut Self, session: &S);

    /// Whether the session holds data of this schema: any of its keys, or (for a schema
    /// with `migrate(..)`) data of a version it migrates from.
    fn is_stored<S: SessionAccess + ?Sized>(session: &S) -> bool {
        crate::__private::any_key_stored(session, Self::KEYS)
    }

    /// Every stored field as `(key, JSON)`, in [`KEYS`](Self::KEYS) order.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Encode`] naming the key of a field that cannot be encoded.
    fn entries(&self) -> Result<Vec<(&'static str, Box<RawValue>)>, SchemaError>;

    /// Loads the struct, starting from `Default` for whatever is absent or no longer
    /// decodes (each such value is logged as a warning). Never fails.
    fn load_or_default<S: SessionAccess + ?Sized>(session: &S) -> Self
    where
        Self: Default,
    {
        let mut value = Self::default();
        Self::load_into(&mut value, session);
        value
    }

    /// Writes every field to its key.
    ///
    /// # Errors
    ///
    /// As [`entries`](Self::entries), or the session's own error.
    fn save<S: SessionAccess + ?Sized>(&self, session: &S) -> Result<(), SchemaError> {
        for (key, json) in self.entries()? {
            session.set_value(key, &json)?;
        }
        Ok(())
    }

    /// Removes every key of the schema from the session.
    fn clear<S: SessionAccess + ?Sized>(session: &S) {
        for key in Self::KEYS {
            session.remove_value(key);
        }
    }
}
