//! Mastermind, the teaching example of typed server-side sessions: the rules
//! ([`game`]), what lives in the session ([`state`]), the session panel that shows it
//! ([`panel`]), and the web front ([`web`]).
#![forbid(unsafe_code)]

pub mod game;
pub mod panel;
pub mod state;
pub mod web;
