//! Mastermind, the teaching example of typed server-side sessions: the rules
//! ([`game`]), what lives in the session ([`state`]), and the web front ([`web`]).
#![forbid(unsafe_code)]

pub mod game;
pub mod state;
pub mod web;
