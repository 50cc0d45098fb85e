//! [`Changes`]: what one request did to a session's state, as a delta.

use serde_json::value::RawValue;

use crate::State;

/// The keys one request set and removed: the delta that an update writes.
///
/// An update carries its changes, not a whole state, so that two requests of one session
/// that change different keys both survive: each is applied to the current record under
/// the version check, and re-applied to a newer record if another write came first (see
/// [`apply_changes`](crate::store::apply_changes)). Two requests that set the same key
/// concurrently: the last write wins.
///
/// ```
/// use session_core::{Changes, State};
/// use serde_json::value::to_raw_value;
///
/// let mut loaded = State::new();
/// loaded.insert("a".into(), to_raw_value(&1)?);
/// loaded.insert("b".into(), to_raw_value(&2)?);
/// let mut saved = loaded.clone();
/// saved.insert("a".into(), to_raw_value(&10)?);
/// saved.remove("b");
///
/// let changes = Changes::between(&loaded, &saved);
/// assert_eq!(changes.len(), 2);
///
/// // Applied to a record another request changed meanwhile, its key "c" stays.
/// let mut current = loaded.clone();
/// current.insert("c".into(), to_raw_value(&3)?);
/// changes.apply(&mut current);
/// assert_eq!(current["a"].get(), "10");
/// assert!(!current.contains_key("b"));
/// assert_eq!(current["c"].get(), "3");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Changes {
    set: Vec<(String, Box<RawValue>)>,
    removed: Vec<String>,
}

impl Changes {
    /// No changes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// What turns `before` into `after`: every key whose JSON text differs or is new, and
    /// every key of `before` that `after` lacks.
    #[must_use]
    pub fn between(before: &State, after: &State) -> Self {
        let mut changes = Self::new();
        for (key, value) in after {
            if before.get(key).is_none_or(|old| old.get() != value.get()) {
                changes.set.push((key.clone(), value.clone()));
            }
        }
        for key in before.keys() {
            if !after.contains_key(key) {
                changes.removed.push(key.clone());
            }
        }
        changes
    }

    /// Every key of `state` set, as for a session written whole.
    #[must_use]
    pub fn all_of(state: &State) -> Self {
        Self {
            set: state.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            removed: Vec::new(),
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Box<RawValue>) {
        self.set.push((key.into(), value));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<String>) {
        self.removed.push(key.into());
    }

    /// Appends `later`, the changes of a save that came after these: for a key both
    /// touch, `later` wins.
    pub fn extend(&mut self, later: &Self) {
        self.set.retain(|(key, _)| {
            !later.removed.contains(key) && !later.set.iter().any(|(k, _)| k == key)
        });
        self.removed
            .retain(|key| !later.set.iter().any(|(k, _)| k == key) && !later.removed.contains(key));
        self.set.extend(later.set.iter().cloned());
        self.removed.extend(later.removed.iter().cloned());
    }

    /// These changes without those to `key`.
    #[must_use]
    pub fn without(&self, key: &str) -> Self {
        Self {
            set: self.set.iter().filter(|(k, _)| k != key).cloned().collect(),
            removed: self.removed.iter().filter(|k| *k != key).cloned().collect(),
        }
    }

    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// How many keys are set or removed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.set.len() + self.removed.len()
    }

    /// What these changes do to `key`: `Some(Some(value))` if they set it (the last value
    /// set wins), `Some(None)` if they only remove it, `None` if they leave it alone.
    #[must_use]
    pub fn change_of(&self, key: &str) -> Option<Option<&RawValue>> {
        if let Some((_, value)) = self.set.iter().rev().find(|(k, _)| k == key) {
            return Some(Some(value));
        }
        self.removed.iter().any(|k| k == key).then_some(None)
    }

    /// Sets `key` to `value`, replacing what these changes set it to before.
    pub fn replace(&mut self, key: &str, value: Box<RawValue>) {
        self.set.retain(|(k, _)| k != key);
        self.removed.retain(|k| k != key);
        self.set.push((key.to_owned(), value));
    }

    /// Applies the changes to `state`: removals first, then the keys set.
    pub fn apply(&self, state: &mut State) {
        for key in &self.removed {
            state.remove(key);
        }
        for (key, value) in &self.set {
            state.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::to_raw_value;

    use super::*;

    fn state(pairs: &[(&str, i32)]) -> State {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), to_raw_value(v).unwrap()))
            .collect()
    }

    fn text(state: &State) -> std::collections::BTreeMap<String, String> {
        state
            .iter()
            .map(|(k, v)| (k.clone(), v.get().to_owned()))
            .collect()
    }

    #[test]
    fn unchanged_state_has_no_changes() {
        let s = state(&[("a", 1), ("b", 2)]);
        assert!(Changes::between(&s, &s).is_empty());
    }

    #[test]
    fn two_deltas_of_different_keys_compose() {
        let base = state(&[("a", 0), ("b", 0)]);
        let first = Changes::between(&base, &state(&[("a", 1), ("b", 0)]));
        let second = Changes::between(&base, &state(&[("a", 0), ("b", 1)]));
        let mut current = base.clone();
        first.apply(&mut current);
        second.apply(&mut current);
        assert_eq!(text(&current), text(&state(&[("a", 1), ("b", 1)])));
    }

    #[test]
    fn extend_lets_the_later_save_win() {
        let base = state(&[("a", 0), ("b", 0)]);
        let mut first = Changes::between(&base, &state(&[("a", 1)])); // b removed, a = 1
        let second = Changes::between(&base, &state(&[("a", 0), ("b", 2), ("c", 3)]));
        first.extend(&second);
        let mut current = base.clone();
        first.apply(&mut current);
        // a from the first save (the second left it alone), b and c from the second.
        assert_eq!(
            text(&current),
            text(&state(&[("a", 1), ("b", 2), ("c", 3)]))
        );
    }

    #[test]
    fn removal_and_all_of() {
        let base = state(&[("a", 0), ("b", 0)]);
        let changes = Changes::between(&base, &state(&[("b", 0)]));
        assert_eq!(changes.len(), 1);
        let mut current = state(&[("a", 5), ("c", 1)]);
        changes.apply(&mut current);
        assert!(!current.contains_key("a"));
        let mut empty = State::new();
        Changes::all_of(&base).apply(&mut empty);
        assert_eq!(empty.len(), 2);
    }
}
