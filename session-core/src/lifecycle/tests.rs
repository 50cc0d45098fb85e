//! One test per row of the lifecycle tables.

use std::time::{Duration, SystemTime};

use super::*;

const MIN: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        idle_timeout: 120 * MIN,
        absolute_timeout: Some(24 * 60 * MIN),
        rotation: Some(15 * MIN),
        theft: TheftResponse::Log,
    }
}

/// A session created, issued and refreshed `age` ago, presented now.
fn facts(age: Duration) -> Facts {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let then = now - age;
    Facts {
        now,
        created_at: then,
        expires_at: then + policy().idle_timeout,
        issued_at: then,
        binding_matches: true,
        forwarded: false,
        stale_key: false,
    }
}

fn cont(rotate: bool, refresh: bool, forwarded: bool) -> Start {
    Start::Continue {
        rotate,
        refresh,
        forwarded,
    }
}

// ---- start ----

#[test]
fn nothing_presented_is_a_new_session() {
    assert_eq!(start(&policy(), Presented::Nothing), Start::New);
}

#[test]
fn unreadable_metadata_replaces_and_ends_the_record() {
    assert_eq!(
        start(&policy(), Presented::Unreadable),
        replace(Refusal::Unreadable, OldRecord::End)
    );
}

#[test]
fn past_the_absolute_timeout_replaces_and_ends() {
    let mut f = facts(MIN);
    f.created_at = f.now - 24 * 60 * MIN;
    assert_eq!(
        start(&policy(), Presented::Session(f)),
        replace(Refusal::AbsoluteTimeout, OldRecord::End)
    );
    let no_limit = Policy {
        absolute_timeout: None,
        ..policy()
    };
    assert!(matches!(
        start(&no_limit, Presented::Session(f)),
        Start::Continue { .. }
    ));
}

#[test]
fn past_the_idle_timeout_replaces_and_ends() {
    let mut f = facts(MIN);
    f.expires_at = f.now;
    assert_eq!(
        start(&policy(), Presented::Session(f)),
        replace(Refusal::IdleTimeout, OldRecord::End)
    );
}

#[test]
fn binding_mismatch_replaces_and_keeps_the_owners_record() {
    let mut f = facts(MIN);
    f.binding_matches = false;
    assert_eq!(
        start(&policy(), Presented::Session(f)),
        replace(Refusal::BindingMismatch, OldRecord::Keep)
    );
}

#[test]
fn timeouts_are_checked_before_binding() {
    let mut f = facts(MIN);
    f.binding_matches = false;
    f.expires_at = f.now;
    assert_eq!(
        start(&policy(), Presented::Session(f)),
        replace(Refusal::IdleTimeout, OldRecord::End)
    );
}

#[test]
fn rotation_due_continues_with_rotate() {
    assert_eq!(
        start(&policy(), Presented::Session(facts(15 * MIN))),
        cont(true, false, false)
    );
    let never = Policy {
        rotation: None,
        ..policy()
    };
    assert_eq!(
        start(&never, Presented::Session(facts(15 * MIN))),
        cont(false, false, false),
        "a quarter of the idle timeout has not passed"
    );
}

#[test]
fn a_previous_key_rotates_at_once_even_without_periodic_rotation() {
    let never = Policy {
        rotation: None,
        ..policy()
    };
    let stale = Facts {
        stale_key: true,
        ..facts(MIN)
    };
    for policy in [policy(), never] {
        assert_eq!(
            start(&policy, Presented::Session(stale)),
            cont(true, false, false)
        );
    }
    let refused = Facts {
        binding_matches: false,
        ..stale
    };
    assert!(
        matches!(
            start(&policy(), Presented::Session(refused)),
            Start::Replace { .. }
        ),
        "a previous key does not excuse a binding mismatch"
    );
}

#[test]
fn refresh_due_after_a_quarter_of_the_idle_timeout() {
    let never = Policy {
        rotation: None,
        ..policy()
    };
    assert_eq!(
        start(&never, Presented::Session(facts(30 * MIN))),
        cont(false, true, false)
    );
    assert_eq!(
        start(&never, Presented::Session(facts(29 * MIN))),
        cont(false, false, false)
    );
}

#[test]
fn a_fresh_session_continues_as_it_is() {
    assert_eq!(
        start(&policy(), Presented::Session(facts(MIN))),
        cont(false, false, false)
    );
}

#[test]
fn a_forwarded_session_is_marked() {
    let mut f = facts(MIN);
    f.forwarded = true;
    assert_eq!(
        start(&policy(), Presented::Session(f)),
        cont(false, false, true)
    );
}

// ---- finish ----

const UNTOUCHED: Handled = Handled {
    purged: false,
    renewed: false,
    changed: false,
    empty: false,
};

fn plan(finish: Finish, end_old: bool, cookie: CookieAction) -> Plan {
    Plan {
        finish,
        end_old,
        cookie,
    }
}

fn purged() -> Handled {
    Handled {
        purged: true,
        empty: true,
        ..UNTOUCHED
    }
}

fn stored() -> Handled {
    Handled {
        changed: true,
        ..UNTOUCHED
    }
}

fn empty() -> Handled {
    Handled {
        empty: true,
        ..UNTOUCHED
    }
}

const REFUSED_END: Start = Start::Replace {
    reason: Refusal::IdleTimeout,
    old: OldRecord::End,
};
const REFUSED_KEEP: Start = Start::Replace {
    reason: Refusal::BindingMismatch,
    old: OldRecord::Keep,
};

#[test]
fn purge_ends_the_loaded_family_and_removes_the_cookie() {
    for start in [cont(false, false, false), cont(true, true, true)] {
        assert_eq!(
            finish(start, purged(), true),
            plan(Finish::End, false, CookieAction::Remove)
        );
    }
    assert_eq!(
        finish(REFUSED_END, purged(), true),
        plan(Finish::End, false, CookieAction::Remove)
    );
    assert_eq!(
        finish(REFUSED_KEEP, purged(), true),
        plan(Finish::Nothing, false, CookieAction::Remove),
        "a stolen cookie cannot end its owner's session"
    );
    assert_eq!(
        finish(Start::New, purged(), true),
        plan(Finish::Nothing, false, CookieAction::Keep)
    );
}

#[test]
fn what_is_stored_after_a_purge_starts_a_fresh_session() {
    let purged_then_stored = Handled {
        purged: true,
        changed: true,
        ..UNTOUCHED
    };
    for start in [cont(false, false, false), cont(true, true, true)] {
        assert_eq!(
            finish(start, purged_then_stored, true),
            plan(Finish::Create, true, CookieAction::Set)
        );
    }
    assert_eq!(
        finish(REFUSED_END, purged_then_stored, true),
        plan(Finish::Create, true, CookieAction::Set)
    );
    assert_eq!(
        finish(REFUSED_KEEP, purged_then_stored, true),
        plan(Finish::Create, false, CookieAction::Set),
        "a stolen cookie cannot end its owner's session"
    );
    assert_eq!(
        finish(Start::New, purged_then_stored, true),
        plan(Finish::Create, false, CookieAction::Set)
    );
}

#[test]
fn a_new_session_left_empty_stores_nothing() {
    assert_eq!(
        finish(Start::New, empty(), true),
        plan(Finish::Nothing, false, CookieAction::Keep)
    );
    let renewed_empty = Handled {
        renewed: true,
        ..empty()
    };
    assert_eq!(
        finish(Start::New, renewed_empty, true),
        plan(Finish::Nothing, false, CookieAction::Keep)
    );
}

#[test]
fn a_refused_session_left_empty_ends_or_keeps_the_old_record() {
    assert_eq!(
        finish(REFUSED_END, empty(), true),
        plan(Finish::End, false, CookieAction::Remove)
    );
    assert_eq!(
        finish(REFUSED_KEEP, empty(), true),
        plan(Finish::Nothing, false, CookieAction::Remove)
    );
}

#[test]
fn a_new_or_refused_session_that_stores_anything_is_created() {
    assert_eq!(
        finish(Start::New, stored(), false),
        plan(Finish::Create, false, CookieAction::Set)
    );
    assert_eq!(
        finish(REFUSED_END, stored(), false),
        plan(Finish::Create, true, CookieAction::Set)
    );
    assert_eq!(
        finish(REFUSED_KEEP, stored(), false),
        plan(Finish::Create, false, CookieAction::Set)
    );
}

#[test]
fn renew_moves_the_state_to_a_fresh_id() {
    let renewed = Handled {
        renewed: true,
        ..UNTOUCHED
    };
    for start in [cont(false, false, false), cont(true, true, true)] {
        assert_eq!(
            finish(start, renewed, false),
            plan(Finish::Renew, false, CookieAction::Set)
        );
    }
}

#[test]
fn rotation_due_rotates_whatever_the_handler_did() {
    for handled in [UNTOUCHED, stored(), empty()] {
        assert_eq!(
            finish(cont(true, false, false), handled, false),
            plan(Finish::Rotate, false, CookieAction::Set)
        );
    }
}

#[test]
fn changes_are_written_and_the_cookie_follows_a_persistent_expiry() {
    assert_eq!(
        finish(cont(false, false, false), stored(), true),
        plan(Finish::Write, false, CookieAction::Set)
    );
    assert_eq!(
        finish(cont(false, false, false), stored(), false),
        plan(Finish::Write, false, CookieAction::Keep)
    );
    assert_eq!(
        finish(cont(false, false, true), stored(), false),
        plan(Finish::Write, false, CookieAction::Set),
        "a forwarded client gets its current id"
    );
}

#[test]
fn an_unchanged_session_due_a_refresh_is_touched() {
    assert_eq!(
        finish(cont(false, true, false), UNTOUCHED, true),
        plan(Finish::Touch, false, CookieAction::Set)
    );
    assert_eq!(
        finish(cont(false, true, false), UNTOUCHED, false),
        plan(Finish::Touch, false, CookieAction::Keep)
    );
}

#[test]
fn an_unchanged_session_costs_nothing() {
    assert_eq!(
        finish(cont(false, false, false), UNTOUCHED, true),
        plan(Finish::Nothing, false, CookieAction::Keep)
    );
    assert_eq!(
        finish(cont(false, false, true), UNTOUCHED, true),
        plan(Finish::Touch, false, CookieAction::Set),
        "a forwarded client gets its current id, checked against the version loaded"
    );
}
